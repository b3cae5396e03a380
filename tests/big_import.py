"""A module whose import allocates 64 MB, as importing a large library maps its data (faulty_runtimes)."""

BLOCK = bytearray(64 * 2**20)
