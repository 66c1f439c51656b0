"""The documents the service answers with: query results and DALI/SCS error VOTables.

Results keep the units, UCDs and descriptions that ``xpdb.query.columns`` puts on the
astropy Table. A VOTable result carries ``<INFO name="QUERY_STATUS" value="OK"/>`` before
its TABLE and, when MAXREC or the service's byte limit cut it, a second ``QUERY_STATUS``
INFO with value OVERFLOW after the TABLE (DALI 1.1), whose text says which limit. Error documents carry
``<INFO name="QUERY_STATUS" value="ERROR">message</INFO>`` in a ``results`` RESOURCE
and, for cone search (SCS 1.03), also ``<INFO ID="Error" name="Error" value="message"/>``
directly under VOTABLE.
"""

from __future__ import annotations

import io
import os
import re

import numpy as np
from xml.sax.saxutils import escape, quoteattr

from xpdb.query.output import to_votable
from xpdb.service.params import Format

# False (XPDB_SERVE_VOTABLE_WRITER=astropy): astropy writes BINARY2 and TABLEDATA too, as before issue 19
# (bench/serve.py --compare runs the load test with both)
FAST_WRITER = os.environ.get("XPDB_SERVE_VOTABLE_WRITER", "numpy") != "astropy"
_VALID_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def result_document(table, fmt: Format, *, overflow: bool, infos: dict[str, object] | None = None,
                    overflow_message: str | None = None, datalink: str | None = None) -> bytes:
    """``table`` as a VOTable, CSV, TSV or FITS document; ``overflow_message`` says why it is cut.

    ``datalink`` (the service's root URL): a VOTable whose first ``source_id`` column can be linked gets the
    DataLink service descriptor for it.
    """
    infos = infos or {}
    if fmt.name == "votable":
        body = _votable(table, fmt.serialization or "binary2", overflow, infos, overflow_message)
        if datalink and "source_id" in table.colnames and table["source_id"].dtype.kind in "iu":
            body = _with_descriptor(body, datalink)
        return body
    if fmt.name in ("csv", "tsv"):
        out = io.StringIO()
        table.write(out, format="ascii.csv" if fmt.name == "csv" else "ascii.tab")
        return out.getvalue().encode()
    if fmt.name == "fits":
        return _fits(table, overflow, {**infos, **({"OVERFLOW": overflow_message} if overflow_message else {})})
    raise ValueError(f"unknown format {fmt.name}")


def query_document(result, fmt: Format, *, infos: dict[str, object] | None = None,
                   datalink: str | None = None) -> bytes:
    """The document of a query result (:class:`xpdb.query.run.QueryResult`), as :func:`result_document` writes
    its table: VOTable BINARY2 and TABLEDATA straight from the result's arrays (no astropy Table is built),
    other formats through the table."""
    infos = infos or {}
    serialization = fmt.serialization or "binary2"
    if fmt.name == "votable" and serialization in ("binary2", "tabledata") and FAST_WRITER:
        from xpdb.service.votable_writer import NotSupported, result_columns

        columns = result_columns(result.columns, result.data, result.masks)
        try:
            body = _fast_votable(columns, [c.name for c in columns], serialization, infos)
        except NotSupported:
            body = None
        if body is not None:
            body = _with_overflow(body, result.overflow, result.overflow_message)
            source = next((c for c in columns if c.name == "source_id"), None)
            if datalink and source is not None and isinstance(source.values, np.ndarray) and \
                    source.values.dtype.kind in "iu":
                body = _with_descriptor(body, datalink)
            return body
    return result_document(result.to_table(), fmt, overflow=result.overflow, infos=infos,
                           overflow_message=result.overflow_message, datalink=datalink)


def _with_descriptor(body: bytes, datalink: str) -> bytes:
    """The DataLink service descriptor for the ``source_id`` column, before ``</VOTABLE>``."""
    from xpdb.service.datalink import service_descriptor

    end = body.rfind(b"</VOTABLE>")
    return body[:end] + service_descriptor(datalink, "source_id").encode() + body[end:]


def _fits(table, overflow: bool, infos: dict) -> bytes:
    """A binary table HDU: TUNIT, and TCOMM/TUCD per column; the status and INFOs as HIERARCH cards."""
    from astropy.io import fits

    names = table.colnames
    safe_names: list[str] = []
    for name in names:
        safe = re.sub(r"[^A-Za-z0-9_]", "_", name) or "col"
        while safe in safe_names:
            safe += "_"
        safe_names.append(safe)
    copy = table.copy(copy_data=False)
    copy.meta.clear()
    if safe_names != names:
        copy.rename_columns(names, safe_names)
    for name in safe_names:  # FITS text is ASCII: other text goes as UTF-8 bytes
        column = copy[name]
        if column.dtype.kind == "U" and not all(str(v).isascii() for v in column):
            encoded = np.char.encode(np.asarray(column, dtype=str), "utf-8")
            description, meta = column.description, dict(column.meta)
            copy[name] = np.ma.MaskedArray(encoded, mask=np.ma.getmaskarray(column))
            copy[name].description = description
            copy[name].meta.update(meta)
    hdu = fits.table_to_hdu(copy, character_as_bytes=True)
    for i, name in enumerate(safe_names, 1):
        column = copy[name]
        if column.description:
            hdu.header[f"TCOMM{i}"] = _ascii(column.description)
        if column.meta.get("ucd"):
            hdu.header[f"TUCD{i}"] = column.meta["ucd"]
    hdu.header["HIERARCH QUERY_STATUS"] = "OVERFLOW" if overflow else "OK"
    for key, value in infos.items():
        hdu.header[f"HIERARCH {_ascii(key).upper()}"] = _ascii(str(value))
    out = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(out)
    return out.getvalue()


def _ascii(text: str) -> str:
    """Printable ASCII for FITS header cards (other characters become '?', whitespace a space)."""
    return "".join(c if " " <= c <= "~" else (" " if c.isspace() else "?") for c in text)


def _ids(names: list[str]) -> list[str]:
    return [n if _VALID_ID.match(n) else f"col{i}_" + re.sub(r"[^A-Za-z0-9_]", "_", n) for i, n in enumerate(names)]


def _fast_votable(columns, names: list[str], serialization: str, infos: dict) -> bytes:
    """xpdb's writer (:mod:`xpdb.service.votable_writer`); NotSupported for what it does not write."""
    from xpdb.service.votable_writer import votable_binary2

    return votable_binary2(columns, names, _ids(names),
                           {k: xml_safe(str(v)) for k, v in {"QUERY_STATUS": "OK", **infos}.items()}, serialization)


def _votable(table, serialization: str, overflow: bool, infos: dict, overflow_message: str | None = None) -> bytes:
    names = table.colnames
    ids = _ids(names)
    body = None
    if serialization in ("binary2", "tabledata") and FAST_WRITER:
        from xpdb.service.votable_writer import NotSupported

        try:  # the table as it is: the writer takes the FIELD names and IDs apart
            body = _fast_votable(table, names, serialization, infos)
        except NotSupported:
            body = None
    if body is None:
        safe = table.copy(copy_data=False)
        safe.meta.clear()
        if ids != names:
            safe.rename_columns(names, ids)
        body = _astropy_votable(safe, names, ids, serialization, infos).getvalue()
        del safe
    return _with_overflow(body, overflow, overflow_message)


def _with_overflow(body: bytes, overflow: bool, overflow_message: str | None) -> bytes:
    """The document with DALI's second QUERY_STATUS INFO (OVERFLOW, with the reason) after its TABLE."""
    if not overflow:
        return body
    text = escape(xml_safe(overflow_message)) if overflow_message else ""
    status = f'<INFO name="QUERY_STATUS" value="OVERFLOW">{text}</INFO>\n'.encode()
    tail_start = max(0, len(body) - 4096)
    end = tail_start + body[tail_start:].rfind(b"</RESOURCE>")
    return b"".join((body[:end], status, body[end:]))


def _astropy_votable(safe, names: list[str], ids: list[str], serialization: str, infos: dict) -> io.BytesIO:
    """The result document written by astropy (TABLEDATA, BINARY, and what the fast writer does not handle)."""
    from astropy.io.votable.tree import Info

    vot = to_votable(safe, binary=True)
    resource = vot.resources[0]
    resource.type = "results"
    vtable = resource.tables[0]
    vtable.format = serialization
    for field_, name, column_name in zip(vtable.fields, names, ids):
        field_.name = name
        if field_.datatype in ("char", "unicodeChar"):
            _variable_text(field_, safe[column_name], vot)
        elif field_.datatype == "bit" and not field_.arraysize:  # TAP_SCHEMA declares PostgreSQL's bool boolean
            field_.datatype = "boolean"
            field_._setup(getattr(vot, "_config", {}), None)
    for key, value in {"QUERY_STATUS": "OK", **infos}.items():
        info = Info(name=key, value=xml_safe(str(value)))
        info.ID = None  # astropy makes IDs from names; they could clash with FIELD IDs
        resource.infos.append(info)
    out = io.BytesIO()
    vot.to_xml(out)
    return out


def _variable_text(field_, column, vot) -> None:
    """A text FIELD as TAP_SCHEMA declares text: ``arraysize="*"``, ``char`` when every value is ASCII
    (``unicodeChar`` otherwise)."""
    values = np.ma.getdata(column)
    ascii_only = values.dtype.kind == "S"
    if values.dtype.kind == "U":
        try:
            values.astype("S")
            ascii_only = True
        except UnicodeEncodeError:
            ascii_only = False
    field_.datatype = "char" if ascii_only else "unicodeChar"
    field_.arraysize = "*"
    field_._setup(getattr(vot, "_config", {}), None)


def xml_safe(text: str) -> str:
    """``text`` without the control characters that XML 1.0 cannot carry."""
    return _XML_INVALID.sub("\ufffd", text)


def error_document(message: str, *, scs: bool = False) -> bytes:
    """A VOTable error document with ``message`` (DALI; SCS 1.03 also gets its Error INFO)."""
    message = xml_safe(" ".join(str(message).split())) or "unknown error"
    scs_info = f'  <INFO ID="Error" name="Error" value={quoteattr(message)}/>\n' if scs else ""
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
            f"{scs_info}"
            '  <RESOURCE type="results">\n'
            f'    <INFO name="QUERY_STATUS" value="ERROR">{escape(message)}</INFO>\n'
            "  </RESOURCE>\n"
            "</VOTABLE>\n").encode()
