"""Fixtures shared by several test modules."""
import pytest

from hdp_rtl.cli import main


@pytest.fixture(scope="session")
def edge_generated(tmp_path_factory):
    """The directory `hdp-rtl generate --preset edge` wrote; tests must not change it.

    It costs about 25 CPU seconds (a conversion and a Yosys run per unit): the tests that
    use it are marked ``xdist_group("edge_generated")``, and ``make test`` passes
    ``--dist loadgroup``, so that they run on one worker and it runs once."""
    out = tmp_path_factory.mktemp("edge")
    assert main(["generate", "--preset", "edge", "-o", str(out)]) == 0
    return out
