"""plugin.toml validation: every error names the file and key, and says how to fix it."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import PluginError
from agent.plugin.manifest import load_manifest
from conftest import REPO


def write(tmp_path: Path, text: str) -> Path:
    """A plugin.toml with the given text."""
    path = tmp_path / "p" / "plugin.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def test_bundled_manifests_parse_and_name_existing_files() -> None:
    for path in sorted((REPO / "plugins").glob("*/plugin.toml")):
        m = load_manifest(path)
        if m.examples:
            assert m.data_file(m.examples, "data.examples").is_file()
        if m.retrieval:
            assert m.data_file(m.retrieval.corpus, "retrieval.corpus").is_file()


def test_valid_manifest(tmp_path: Path) -> None:
    m = load_manifest(write(tmp_path, 'name = "x"\ndescription = "d"\nlabels = ["a", "b"]\n[thresholds]\nmin_margin = 0\n'))
    assert (m.name, m.role, list(m.labels)) == ("x", "responder", ["a", "b"])
    assert m.thresholds.min_margin == 0.0


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'name = "x"\ndescription = \n')
    with pytest.raises(PluginError, match=r"plugin.toml: invalid TOML: .*line 2"):
        load_manifest(path)


@pytest.mark.parametrize("text, pattern", [
    ('description = "d"', "missing required key 'name'"),
    ('name = "x"\ndescription = "d"\nrole = "boss"', r"key 'role' must be one of \['responder', 'observer'\], found 'boss'"),
    ('name = "x"\ndescription = "d"\n[thresholds]\nmin_confidence = 3', "key 'thresholds.min_confidence' must be a number from 0 to 1"),
    ('name = "x"\ndescription = "d"\ncolour = "red"', r"plugin.toml:3: unknown key 'colour'; expected only \['data'"),
    ('name = "x"\ndescription = "d"\n[retrieval]\ntop_k = 3', "missing required key 'retrieval.corpus'"),
    ('name = "x y"\ndescription = "d"', "key 'name' must be letters"),
    ('name = "x"\ndescription = "d"\n[thresholds]\nmin_simlarity = 0.9',
     r"plugin.toml:4: unknown key 'min_simlarity' in \[thresholds\]; did you mean 'min_similarity'\?"),
])
def test_bad_keys_are_named(tmp_path: Path, text: str, pattern: str) -> None:
    with pytest.raises(PluginError, match=pattern):
        load_manifest(write(tmp_path, text))


def test_data_paths_cannot_leave_the_plugin_folder(tmp_path: Path) -> None:
    m = load_manifest(write(tmp_path, 'name = "x"\ndescription = "d"\n[data]\nexamples = "../../etc/passwd"\n'))
    with pytest.raises(PluginError, match="points outside the plugin folder"):
        m.data_file(m.examples, "data.examples")
