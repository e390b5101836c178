"""Griffe extensions for the API reference; nothing is imported or executed.

* :class:`AssignedDocstrings` — ``sparseae.coding.solvers`` shares one long text between ``ista``
  and ``fista`` by assigning ``fista.__doc__ = "..." + _SOLVER_DOC`` after the definition.
  Static analysis does not run that code, so the extension evaluates such assignments itself
  (string literals, ``+`` and module-level string constants only) and gives the function its
  docstring.
* Both extensions render the Sphinx roles of the docstrings (``:class:`~sparseae.x.Name```) as
  inline code (``Name``), since Markdown has no roles.
"""
from __future__ import annotations

import ast
import inspect
import re

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|obj|exc|const|term):`(~?)([^`]+)`(?:\\ )?")


def _role_as_code(match: re.Match) -> str:
    short, target = match.group(1), match.group(2).lstrip(".")
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


def markdown_roles(text: str) -> str:
    """``:class:`~a.b.C``` → ```C```, ``:func:`a.f``` → ```a.f```."""
    return ROLE.sub(_role_as_code, text)


def _string(node: ast.AST, constants: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _string(node.left, constants), _string(node.right, constants)
        return None if left is None or right is None else left + right
    return None


class AssignedDocstrings(griffe.Extension):
    """Docstrings assigned as ``function.__doc__ = <string expression>`` at module level."""

    def on_module_members(self, *, node, mod, agent, **kwargs) -> None:
        if not isinstance(node, ast.Module):
            return
        constants: dict[str, str] = {}
        for statement in node.body:
            if not isinstance(statement, ast.Assign) or len(statement.targets) != 1:
                continue
            target = statement.targets[0]
            if isinstance(target, ast.Name):
                value = _string(statement.value, constants)
                if value is not None:
                    constants[target.id] = value
            elif (isinstance(target, ast.Attribute) and target.attr == "__doc__"
                  and isinstance(target.value, ast.Name) and target.value.id in mod.members):
                text = _string(statement.value, constants)
                member = mod.members[target.value.id]
                if text is not None and not member.is_alias and member.docstring is None:
                    member.docstring = griffe.Docstring(markdown_roles(inspect.cleandoc(text)),
                                                        lineno=statement.lineno,
                                                        endlineno=statement.end_lineno, parent=member)


class SphinxRoles(griffe.Extension):
    """Sphinx cross-reference roles in docstrings shown as inline code."""

    def on_instance(self, *, node, obj, agent, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown_roles(obj.docstring.value)
