"""Run the whole TFX chain locally: `python run_local.py [options]`; `--help` lists every command."""

# Before anything imports TFX: `tfx.v1` without its Google Cloud extensions (about 5 s of import
# no component here uses; components/tfx_private.py).
from components import tfx_private

tfx_private.defer_cloud_extensions()

from cli.app import main  # noqa: E402 - after the deferral above
from cli.exit_codes import exit_without_teardown  # noqa: E402

if __name__ == "__main__":
    try:
        main()
    except SystemExit as done:  # click ends every command with sys.exit
        exit_without_teardown(done.code)
