"""The exports' errors: codes 801-829."""
