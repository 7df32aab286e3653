"""Running code as a user who has TensorFlow but not this project.

After `pip install -e .` (what the README and CI do) the project's packages
import from any folder, so clearing PYTHONPATH is not enough; this prelude
makes every import of them fail, as on a serving machine.
"""
PROJECT_PACKAGES = ("core", "layers", "train_loop", "tools")

BLOCK_PROJECT = (
    "import sys\n"
    f"for _name in {PROJECT_PACKAGES!r}:\n"
    "    sys.modules[_name] = None  # 'import core' now raises ImportError\n"
)


def without_project(code: str) -> str:
    """`code` preceded by the prelude that hides the project."""
    return BLOCK_PROJECT + code
