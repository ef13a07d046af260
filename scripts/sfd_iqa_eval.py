"""SFD-IQA on an image, a folder or an IQA data set with opinion scores. See --help."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_utils.compat import install  # noqa: E402

install()  # before anything imports basicsr
from sfd_iqa_tools.evaluate import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
