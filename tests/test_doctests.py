"""Run the example in every public docstring, so the documentation cannot go stale."""

import doctest
import importlib
import pkgutil

import pytest

import plasagne

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(plasagne.__path__, prefix="plasagne.")
    if not info.name.endswith("__main__")
)


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples(module_name):
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    globs = {
        "np": __import__("numpy"),
        "pt": __import__("pytensor.tensor").tensor,
        "pytensor": __import__("pytensor"),
    }
    for test in finder.find(module, module_name, globs=dict(globs, **vars(module))):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {module_name}"
