"""The one progress bar: redrawn in place on a terminal, plain lines per
fraction of the work elsewhere, and the tile adapter the predictors drive."""
import io

import tensorflow as tf

from train_loop.progress import ProgressBar, TileProgress, format_duration


class ProgressTest(tf.test.TestCase):

    def test_tiles_write_plain_text_when_not_a_terminal(self):
        stream = io.StringIO()
        bar = TileProgress(2, stream=stream)
        bar.start_tile(1, "b.tif")
        for done in range(1, 21):
            bar(done, 20)
        lines = stream.getvalue().splitlines()
        self.assertLen(lines, 11)  # the first window, then one line per 10 %
        self.assertEqual(lines[-1], "tile 2/2 b.tif: 20/20 windows (100%)")
        self.assertNotIn("\r", stream.getvalue())

    def test_redraws_in_place_and_is_silent_by_default_off_a_terminal(self):
        stream = io.StringIO()
        bar = ProgressBar(4, desc="train", unit="step", stream=stream, enabled=True)
        for done in range(1, 5):
            bar.update(done, f"loss {done}")
        bar.close()
        draws = stream.getvalue().split("\r")[1:]
        self.assertLen(draws, 4)
        self.assertStartsWith(draws[1], "train  50% |" + "#" * 15 + "." * 15 + "| 2/4 [")
        self.assertTrue(draws[-1].startswith("train 100% |") and draws[-1].endswith(
            "ETA 0:00] loss 4\n"), draws[-1])
        quiet = io.StringIO()
        ProgressBar(4, stream=quiet).update(2)
        self.assertEqual(quiet.getvalue(), "")
        self.assertEqual((format_duration(4000.5), format_duration(75)), ("1:06:40", "1:15"))


if __name__ == "__main__":
    tf.test.main()
