"""Run the whole TFX chain locally: `python run_local.py [options]`; `--help` lists every command."""

import sys

from cli.app import main

if __name__ == "__main__":
    sys.exit(main())
