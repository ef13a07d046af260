"""Shared helpers of sfd-basicsr. Kept import-light: ``sfd_utils.compat`` is stdlib-only."""
