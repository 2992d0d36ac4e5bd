"""The compiled modules are release builds: no debug information, no static
symbol table (setup.py; GRU_CY_DEBUG=1 builds the debug variant, which this
file then leaves alone). Debug information made the wheel 1.9 MB instead of
under 0.5 MB.

Reads the section names of each extension's ELF file (Linux); other
platforms skip.
"""

import importlib
import os
import struct
import sys

import pytest

COMPILED = ("gru_cy.kernels._core",)


def elf_section_names(path):
    """Names of the sections of a 64-bit little-endian ELF file."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        pytest.skip(f"{os.path.basename(path)} is not a 64-bit little-endian ELF file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def header(i):
        # (name offset, type, flags, addr, offset, size)
        return struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)

    strtab = header(shstrndx)
    names = data[strtab[4]:strtab[4] + strtab[5]]
    return [names[header(i)[0]:names.index(b"\0", header(i)[0])].decode()
            for i in range(shnum)]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF files on Linux only")
@pytest.mark.skipif(os.environ.get("GRU_CY_DEBUG", "0") not in ("", "0"),
                    reason="a GRU_CY_DEBUG=1 build keeps its debug information")
@pytest.mark.parametrize("name", COMPILED)
def test_extension_has_no_debug_information(name):
    path = importlib.import_module(name).__file__
    sections = elf_section_names(path)
    assert ".dynsym" in sections and ".text" in sections, sections   # the parser works
    debug = [s for s in sections if s.startswith((".debug", ".zdebug"))]
    assert not debug, f"{path} carries debug sections {debug}"
    assert ".symtab" not in sections, f"{path} is not stripped"
