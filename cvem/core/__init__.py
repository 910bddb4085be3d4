"""The pure decision core: no I/O, no clock (``now_s`` is passed in), sizes in KiB."""
