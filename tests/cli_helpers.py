"""Running the ``vidfm`` command inside a test."""

from vidfm.cli.main import main


def run(capsys, *argv):
    """(exit code, stdout, stderr) of ``vidfm ARGV`` (arguments may be paths)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err
