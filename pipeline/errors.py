"""The one exception type the library raises for bad input."""


class DatasetError(ValueError):
    """Input data is not what a reader or stage expects.

    The message names the file, the problem (expected vs found) and, where there is one, the fix.
    """

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        # one line, whatever the problem text embeds (library messages, lists): logs and
        # terminals show the whole error, and `on_error: skip` records it in one CSV/JSON field
        self.problem = "; ".join(line.strip() for line in str(problem).splitlines() if line.strip())
        super().__init__(f"{self.path}: {self.problem}")


class UsageError(ValueError):
    """The user's settings are wrong: a params.yaml key or value, or a command-line flag.

    Stages report it in one line naming the setting and the fix, exit with status 2 (data
    problems exit 1), and never blame a data file for it.
    """
