"""Write the CSUD demo data set: synthetic streak rain on scikit-image's photos (no download).

Thin entry point: the arguments are parsed before torch is imported (``--help`` answers at once);
the program is ``sfd_tools.csud.synthetic_rain.run_synthetic_rain``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_tools.csud.cli import synthetic_rain_parser  # noqa: E402
from sfd_utils.cli import launch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return launch(synthetic_rain_parser, "sfd_tools.csud.synthetic_rain:run_synthetic_rain", argv)


if __name__ == "__main__":
    sys.exit(main())
