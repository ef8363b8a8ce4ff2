"""cocotb side of tests/test_verilog_as_generated.py: the top's handshake outputs are 0
or 1 right after reset, on the generated Verilog as it is."""
import cocotb

from streams import past_time_zero, start_clock_and_reset

#: valid/ready inputs, held low through reset as AXI asks
INPUTS = ("s_axil_awvalid", "s_axil_wvalid", "s_axil_bready", "s_axil_arvalid",
          "s_axil_rready", "s_axis_tvalid", "m_axis_tready")
#: outputs driven from registers only: X here unless the always @* blocks ran at start
OUTPUTS = ("s_axis_tready", "m_axis_tvalid")


@cocotb.test()
async def outputs_known_after_reset(dut):
    await past_time_zero()
    for name in INPUTS:
        getattr(dut, name).value = 0
    await start_clock_and_reset(dut)
    values = {name: str(getattr(dut, name).value) for name in OUTPUTS}
    assert all(v in ("0", "1") for v in values.values()), values
