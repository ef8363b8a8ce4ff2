"""Block-RAM memories whose read ports need no collision logic.

An ``amaranth.lib.memory`` synchronous read port returns the old word when the write
port writes the same address in the same cycle. ECP5's DP16KD and iCE40's SB_RAM40_4K
leave that cross-port collision undefined, so yosys builds the old-word behaviour out
of fabric: a register per data bit, an address compare and a bypass multiplexer (513
flip-flops and 258 LUTs for each 512-bit row buffer of ``default``), with the read
enable fanned out to all of them. The memories built here are never read at an
address written in the same cycle (each user says why), so they declare the collision
don't-care: an asynchronous read port whose output register sits outside it, on a
memory marked ``no_rw_check``. Yosys folds that register into the block RAM's own read
port with no collision logic (for Verilog read by yosys too: the attribute is in the
generated Verilog); simulation is unchanged, the register holds the old word.

The output register has no reset (no user reads a word it did not address since the
reset) and is tagged ``READ_REGISTER_ATTR``. Amaranth still gives it an initial value,
which an iCE40 block RAM's output cannot have, so yosys would emulate it in fabric (a
flag flip-flop and a LUT per data bit: about 100 LUTs per 100-bit port). The FPGA
builds drop that initial value before synthesis (``DROP_READ_REGISTER_INIT``, a yosys
command); a user's own yosys flow reading the generated Verilog can do the same.
"""
from amaranth.hdl import Signal
from amaranth.lib import memory, wiring

from ..widths import index_bits

__all__ = ["NO_RW_CHECK", "READ_REGISTER_ATTR", "DROP_READ_REGISTER_INIT", "bram",
           "registered_read_port"]

#: The yosys memory attribute that makes same-cycle read/write collisions don't-care.
NO_RW_CHECK = {"no_rw_check": 1}
#: The attribute on every block-RAM output register built here.
READ_REGISTER_ATTR = "hdp_bram_read_register"
#: The yosys command that makes those registers' initial values don't-care.
DROP_READ_REGISTER_INIT = f"setattr -unset init a:{READ_REGISTER_ATTR}"


def bram(m, name: str, *, shape, depth: int) -> memory.Memory:
    """A memory of ``depth`` words of ``shape``, added to ``m`` as ``name``, whose read
    ports (:func:`registered_read_port`) have no collision logic."""
    mem = memory.Memory(shape=shape, depth=depth, init=[], attrs=NO_RW_CHECK)
    m.submodules[name] = mem
    return mem


def registered_read_port(m, mem: memory.Memory, *, name: str) -> wiring.PureInterface:
    """A one-cycle-latency read port of ``mem`` with ``memory.ReadPort``'s members and
    behaviour (``data`` holds the word addressed in the last cycle ``en`` was high).

    The caller guarantees that it never reads an address that is written in the same
    cycle: the word it would get then is undefined in the hardware.
    """
    sig = memory.ReadPort.Signature(addr_width=index_bits(mem.depth), shape=mem.shape)
    port = wiring.PureInterface(sig, path=(name,))
    rd = mem.read_port(domain="comb")
    data = Signal(mem.shape, name=f"{name}_q", reset_less=True,
                  attrs={READ_REGISTER_ATTR: 1})
    m.d.comb += [rd.addr.eq(port.addr), port.data.eq(data)]
    with m.If(port.en):
        m.d.sync += data.eq(rd.data)
    return port
