"""Longest tests first: pytest-xdist hands tests out in collection order, so a long
top-level simulation collected last would run alone at the end while the other worker
idles. Tests marked ``slow`` (each a simulator build and minutes of simulation) are
moved to the front; the order among the others is unchanged."""


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
