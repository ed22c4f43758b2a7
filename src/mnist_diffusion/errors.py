"""The one exception type that the command line turns into a one-line message."""


class UserError(Exception):
    """A problem the user can fix (bad config, missing data, bad file).

    The CLI prints ``error: <message>`` on one line and exits with status 2 instead of
    showing a traceback. The message must say what is wrong *and* how to fix it.
    """
