"""Run the whole TFX chain locally: `python run_local.py [options]`; `--help` lists every command."""

from cli.app import main
from cli.exit_codes import exit_without_teardown

if __name__ == "__main__":
    try:
        main()
    except SystemExit as done:  # click ends every command with sys.exit
        exit_without_teardown(done.code)
