"""The simulation infrastructure itself: packing and the stream driver/monitor pair."""
import pytest
from hypothesis import given, strategies as st

from sim.packing import pack, unpack
from sim.runner import SIMULATORS, run_cocotb
from tb.infra_passthrough import LAYOUT, Passthrough


@given(st.integers(-16, 15), st.lists(st.integers(0, 7), min_size=2, max_size=2), st.integers(0, 1))
def test_pack_round_trip(a, b, last):
    value = {"a": a, "b": b, "last": last}
    assert unpack(LAYOUT, pack(LAYOUT, value)) == value


def test_pack_rejects_out_of_range():
    with pytest.raises(ValueError):
        pack(LAYOUT, {"a": 16, "b": [0, 0], "last": 0})


@pytest.mark.sim
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_stream_drivers(simulator):
    run_cocotb(component=Passthrough(), toplevel="passthrough", test_module="cocotb_infra",
               simulator=simulator, name="infra")
