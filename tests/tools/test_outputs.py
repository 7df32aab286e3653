"""tools.outputs.check_output_dir: refuses what cannot be written, creates nothing."""
import os
import tempfile
import unittest

from tools import outputs


class CheckOutputDirTest(unittest.TestCase):

    def setUp(self):
        self.root = tempfile.mkdtemp()
        self.file = os.path.join(self.root, "notes.txt")
        with open(self.file, "w", encoding="utf-8") as f:
            f.write("mine")

    def test_folders_that_can_be_written_pass_and_nothing_is_created(self):
        outputs.check_output_dir(self.root, "--output_dir")
        outputs.check_output_dir(os.path.join(self.root, "a", "b"), "--output_dir")
        self.assertEqual(os.listdir(self.root), ["notes.txt"])  # no folder, no probe left

    def test_what_cannot_be_a_folder_is_named(self):
        cases = {
            self.file: f"--out={self.file} is a file, not a folder; give a folder",
            os.path.join(self.file, "sub"):
                f"--out={self.file}/sub cannot be created: {self.file} is a file",
        }
        link = os.path.join(self.root, "gone")
        os.symlink(os.path.join(self.root, "missing"), link)
        cases[os.path.join(link, "x")] = f"--out={link}/x cannot be created: {link} is a broken link"
        for path, message in cases.items():
            with self.assertRaises(outputs.OutputError) as caught:
                outputs.check_output_dir(path, "--out")
            self.assertEqual(str(caught.exception), message)
        with self.assertRaisesRegex(outputs.OutputError, r"^--out is empty"):
            outputs.check_output_dir("", "--out")
        with open(self.file, encoding="utf-8") as f:
            self.assertEqual(f.read(), "mine")

    def test_a_folder_where_a_file_goes(self):
        os.makedirs(os.path.join(self.root, "lr_find.csv"))
        with self.assertRaisesRegex(outputs.OutputError, r"lr_find\.csv is a folder, but this "
                                    r"binary writes a file there"):
            outputs.check_output_dir(self.root, "--output_dir", files=("lr_find.csv",))

    def test_unwritable_folder(self):
        # sysfs refuses new files even to root, who may write anywhere else.
        with self.assertRaisesRegex(outputs.OutputError, r"^--output_dir=/sys/x/y: cannot "
                                    r"write in /sys \((Permission denied|Read-only file "
                                    r"system)\); choose another --output_dir$"):
            outputs.check_output_dir("/sys/x/y", "--output_dir")


if __name__ == "__main__":
    unittest.main()
