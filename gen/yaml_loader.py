"""A YAML loader that rejects duplicate keys and remembers the line of every mapping and key."""
from __future__ import annotations

import yaml


class LineDict(dict):
    """A mapping from YAML that knows where it and each of its keys were written (1-based)."""

    line: int = 0
    key_lines: dict

    def line_of(self, key) -> int:
        return self.key_lines.get(key, self.line)


class DuplicateKeyError(ValueError):
    def __init__(self, line: int, key) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.line = line


class _Loader(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):
        mapping = LineDict()
        mapping.line = node.start_mark.line + 1
        mapping.key_lines = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in mapping:
                raise DuplicateKeyError(line, key)
            mapping[key] = self.construct_object(value_node, deep=True)
            mapping.key_lines[key] = line
        return mapping


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _Loader.construct_mapping)


def load(text: str):
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
