"""The one exception type the library raises for bad input."""


class DatasetError(ValueError):
    """Input data is not what a reader or stage expects.

    The message names the file, the problem (expected vs found) and, where there is one, the fix.
    """

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
