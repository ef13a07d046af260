"""SFD-IQA on an image, a folder or an IQA data set with opinion scores. See --help.

Thin entry point: the arguments are parsed before torch is imported (``--help`` answers at once);
the program is ``sfd_tools.iqa.evaluate.run_iqa_eval``.
Installed from a wheel, the same program is the console script ``sfd-iqa``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_tools.console import sfd_iqa_eval_main as main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
