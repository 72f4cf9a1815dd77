"""A Sphinx extension for the book: drop duplicated <script> tags from every page.

sphinx-thebe adds its inline configuration script each time Sphinx reads the
documents, and sphinxcontrib-bibtex makes Sphinx read them twice, so pages got
the script twice and browsers raised "THEBE_JS_URL has already been declared".
"""


def _drop_duplicate_scripts(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files", []):
        # The two copies differ only in an empty file name: None in one, "" in the other.
        filename = getattr(script, "filename", script) or ""
        key = (str(filename), tuple(sorted((k, str(v)) for k, v in getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    if "script_files" in context:
        context["script_files"][:] = unique


def setup(app):
    app.connect("html-page-context", _drop_duplicate_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
