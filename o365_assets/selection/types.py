"""What a file really is: its type from the bytes, weighed against its name and declared type.

Binary formats are recognised by their signature (`puremagic`), zip containers by the names of
their members (Office Open XML, OpenDocument, jar, apk) and OLE2 compound files by their streams
(xls, doc, ppt, msg, msi, encrypted Office). Text formats carry no signature and are judged by
name plus a sniff of the head: is it text, does it parse as JSON, does it start like RFC 822
headers, is it delimited like CSV.

A name or declared type that disagrees with the bytes is recorded as a *mismatch* (a reason for
quarantine) only when it matters: executable content under another name, or content of another
family than the name claims (HTML named .xlsx, a workbook named .csv). Benign disagreements (an
xlsx declared as application/octet-stream, a .xls that is really xlsx, a .txt holding CSV) are
kept as notes.
"""

import csv
import io
import json
import logging
import re
import struct
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO

import olefile
import puremagic

logger = logging.getLogger(__name__)

HEAD_SIZE = 8192

# Above this many entries the central directory is not read into memory: the count alone is
# enough to refuse the archive, and hostile archives can declare millions of entries.
ZIP_ENTRIES_READ_MAX = 100_000

# A member this large or larger counts towards the compression-ratio test; tiny members
# compress arbitrarily well without meaning anything.
RATIO_MEMBER_MIN = 1 << 20


@dataclass(frozen=True)
class TypeSpec:
    """A canonical file type: how to speak of it and which family it belongs to."""

    description: str
    mime: str
    family: str


TYPES: dict[str, TypeSpec] = {
    # Documents that the parsing layer reads.
    "pdf": TypeSpec("a PDF document", "application/pdf", "pdf"),
    "xlsx": TypeSpec(
        "an Excel workbook (xlsx)",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "spreadsheet",
    ),
    "xlsm": TypeSpec(
        "a macro-enabled Excel workbook (xlsm)",
        "application/vnd.ms-excel.sheet.macroEnabled.12",
        "spreadsheet",
    ),
    "xlsb": TypeSpec(
        "a binary Excel workbook (xlsb)",
        "application/vnd.ms-excel.sheet.binary.macroEnabled.12",
        "spreadsheet",
    ),
    "xls": TypeSpec("an Excel 97-2003 workbook (xls)", "application/vnd.ms-excel", "spreadsheet"),
    "ods": TypeSpec(
        "an OpenDocument spreadsheet (ods)",
        "application/vnd.oasis.opendocument.spreadsheet",
        "spreadsheet",
    ),
    "docx": TypeSpec(
        "a Word document (docx)",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "document",
    ),
    "docm": TypeSpec(
        "a macro-enabled Word document (docm)",
        "application/vnd.ms-word.document.macroEnabled.12",
        "document",
    ),
    "doc": TypeSpec("a Word 97-2003 document (doc)", "application/msword", "document"),
    "odt": TypeSpec(
        "an OpenDocument text (odt)", "application/vnd.oasis.opendocument.text", "document"
    ),
    "rtf": TypeSpec("a rich-text document (rtf)", "application/rtf", "document"),
    "pptx": TypeSpec(
        "a PowerPoint presentation (pptx)",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "presentation",
    ),
    "pptm": TypeSpec(
        "a macro-enabled PowerPoint presentation (pptm)",
        "application/vnd.ms-powerpoint.presentation.macroEnabled.12",
        "presentation",
    ),
    "ppt": TypeSpec(
        "a PowerPoint 97-2003 presentation (ppt)", "application/vnd.ms-powerpoint", "presentation"
    ),
    "odp": TypeSpec(
        "an OpenDocument presentation (odp)",
        "application/vnd.oasis.opendocument.presentation",
        "presentation",
    ),
    "odf": TypeSpec("an OpenDocument file", "application/vnd.oasis.opendocument", "document"),
    "encrypted-office": TypeSpec(
        "a password-protected Office document", "application/x-encrypted-office", "encrypted"
    ),
    # Text, judged by name and a sniff of the head.
    "csv": TypeSpec("comma-separated text (csv)", "text/csv", "text"),
    "tsv": TypeSpec("tab-separated text (tsv)", "text/tab-separated-values", "text"),
    "txt": TypeSpec("plain text", "text/plain", "text"),
    "json": TypeSpec("JSON", "application/json", "text"),
    "jsonl": TypeSpec("JSON lines", "application/jsonl", "text"),
    "xml": TypeSpec("XML", "application/xml", "text"),
    "ics": TypeSpec("a calendar (ics)", "text/calendar", "text"),
    "vcf": TypeSpec("a contact card (vcf)", "text/vcard", "text"),
    "eml": TypeSpec("an email message (RFC 822)", "message/rfc822", "text"),
    "html": TypeSpec("HTML", "text/html", "html"),
    # Mail containers.
    "msg": TypeSpec("an Outlook message (msg)", "application/vnd.ms-outlook", "outlook"),
    "tnef": TypeSpec("a TNEF container (winmail.dat)", "application/ms-tnef", "tnef"),
    # Images.
    "png": TypeSpec("a PNG image", "image/png", "image"),
    "jpg": TypeSpec("a JPEG image", "image/jpeg", "image"),
    "gif": TypeSpec("a GIF image", "image/gif", "image"),
    "bmp": TypeSpec("a BMP image", "image/bmp", "image"),
    "tiff": TypeSpec("a TIFF image", "image/tiff", "image"),
    "webp": TypeSpec("a WebP image", "image/webp", "image"),
    "heic": TypeSpec("a HEIC image", "image/heic", "image"),
    "ico": TypeSpec("an icon", "image/x-icon", "image"),
    "svg": TypeSpec("an SVG image", "image/svg+xml", "image"),
    "emf": TypeSpec("a Windows metafile (emf)", "image/emf", "image"),
    "wmf": TypeSpec("a Windows metafile (wmf)", "image/wmf", "image"),
    # Archives.
    "zip": TypeSpec("a zip archive", "application/zip", "archive"),
    "gz": TypeSpec("a gzip archive", "application/gzip", "archive"),
    "bz2": TypeSpec("a bzip2 archive", "application/x-bzip2", "archive"),
    "xz": TypeSpec("an xz archive", "application/x-xz", "archive"),
    "7z": TypeSpec("a 7-Zip archive", "application/x-7z-compressed", "archive"),
    "rar": TypeSpec("a RAR archive", "application/vnd.rar", "archive"),
    "tar": TypeSpec("a tar archive", "application/x-tar", "archive"),
    "cab": TypeSpec("a cabinet archive (cab)", "application/vnd.ms-cab-compressed", "archive"),
    # Programs: never kept, and quarantined when they hide under another name.
    "exe": TypeSpec(
        "a Windows executable (PE)", "application/vnd.microsoft.portable-executable", "executable"
    ),
    "dos-exe": TypeSpec("a DOS executable (MZ)", "application/x-dosexec", "executable"),
    "elf": TypeSpec("a Linux executable (ELF)", "application/x-executable", "executable"),
    "macho": TypeSpec("a macOS executable (Mach-O)", "application/x-mach-binary", "executable"),
    "java": TypeSpec("a Java class or macOS universal binary", "application/java-vm", "executable"),
    "msi": TypeSpec("a Windows installer (msi)", "application/x-msi", "executable"),
    "jar": TypeSpec("a Java archive (jar)", "application/java-archive", "executable"),
    "apk": TypeSpec(
        "an Android package (apk)", "application/vnd.android.package-archive", "executable"
    ),
    "lnk": TypeSpec("a Windows shortcut (lnk)", "application/x-ms-shortcut", "executable"),
    "script": TypeSpec("a script", "text/x-script", "executable"),
    # Everything else.
    "mp3": TypeSpec("an MP3 audio file", "audio/mpeg", "media"),
    "wav": TypeSpec("a WAV audio file", "audio/wav", "media"),
    "mp4": TypeSpec("an MP4 video", "video/mp4", "media"),
    "avi": TypeSpec("an AVI video", "video/x-msvideo", "media"),
    "ps": TypeSpec("a PostScript document", "application/postscript", "other"),
    "signature": TypeSpec("a digital signature", "application/pkcs7-signature", "other"),
    "empty": TypeSpec("an empty file", "application/x-empty", "empty"),
    "unknown": TypeSpec("binary data of unknown type", "application/octet-stream", "unknown"),
}

# Type families whose members may stand in for one another without anyone being misled: a
# .xls that is really xlsx opens in Excel and is parsed by its real type.
_COMPATIBLE_FAMILIES: dict[str, frozenset[str]] = {
    "encrypted": frozenset({"spreadsheet", "document", "presentation", "encrypted"}),
    "spreadsheet": frozenset({"spreadsheet", "encrypted"}),
    "document": frozenset({"document", "encrypted"}),
    "presentation": frozenset({"presentation", "encrypted"}),
}

# Families a parser reads by the claimed type: content of another kind under such a name, or
# bytes nobody recognises, would mislead it.
_PARSED_FAMILIES = frozenset(
    {"pdf", "spreadsheet", "document", "presentation", "text", "html", "outlook", "encrypted"}
)

# Families where a disagreement between claim and content matters: what is parsed, unpacked
# or run.
_CARED_FAMILIES = _PARSED_FAMILIES | {"archive", "executable", "tnef"}

# Zip-based formats that an archive name (.zip) may honestly carry.
_ZIP_BASED = frozenset({"xlsx", "xlsm", "xlsb", "docx", "docm", "pptx", "pptm", "ods", "odt"})

EXTENSIONS: dict[str, str] = {
    **{ext: ext for ext in TYPES if ext not in {"empty", "unknown", "dos-exe", "script"}},
    "jpeg": "jpg",
    "jpe": "jpg",
    "jfif": "jpg",
    "tif": "tiff",
    "heif": "heic",
    "htm": "html",
    "xhtml": "html",
    "text": "txt",
    "log": "txt",
    "tab": "tsv",
    "ndjson": "jsonl",
    "xlt": "xls",
    "xltx": "xlsx",
    "xltm": "xlsm",
    "dot": "doc",
    "dotx": "docx",
    "dotm": "docm",
    "pps": "ppt",
    "ppsx": "pptx",
    "tgz": "gz",
    "ical": "ics",
    "vcard": "vcf",
    "p7s": "signature",
    "p7m": "signature",
    "asc": "signature",
    "sig": "signature",
    **dict.fromkeys(("dll", "scr", "sys", "cpl", "ocx", "drv", "efi", "com", "pif"), "exe"),
    **dict.fromkeys(("sh", "bash", "py", "pl", "ps1", "bat", "cmd", "vbs", "js", "hta"), "script"),
    "so": "elf",
    "class": "java",
    "dylib": "macho",
    "msp": "msi",
}

CONTENT_TYPES: dict[str, str] = {
    **{spec.mime: name for name, spec in TYPES.items() if name not in {"unknown", "empty"}},
    "application/x-pdf": "pdf",
    "application/acrobat": "pdf",
    "application/excel": "xls",
    "application/x-excel": "xls",
    "application/x-msexcel": "xls",
    "application/vnd.ms-excel.sheet.macroenabled.12": "xlsm",
    "application/vnd.ms-excel.sheet.binary.macroenabled.12": "xlsb",
    "application/vnd.ms-word.document.macroenabled.12": "docm",
    "application/vnd.ms-powerpoint.presentation.macroenabled.12": "pptm",
    "application/doc": "doc",
    "application/csv": "csv",
    "text/comma-separated-values": "csv",
    "text/x-csv": "csv",
    "text/json": "json",
    "application/x-ndjson": "jsonl",
    "text/xml": "xml",
    "text/x-vcard": "vcf",
    "application/ics": "ics",
    "image/jpg": "jpg",
    "image/pjpeg": "jpg",
    "image/x-png": "png",
    "image/x-ms-bmp": "bmp",
    "application/x-zip-compressed": "zip",
    "application/x-zip": "zip",
    "application/x-gzip": "gz",
    "application/x-rar-compressed": "rar",
    "application/vnd.ms-tnef": "tnef",
    "application/x-msdownload": "exe",
    "application/x-msdos-program": "exe",
    "application/x-ms-dos-executable": "exe",
    "application/x-sharedlib": "elf",
    "application/x-msi": "msi",
    "application/x-ms-installer": "msi",
    "application/pkcs7-signature": "signature",
    "application/x-pkcs7-signature": "signature",
    "application/pgp-signature": "signature",
}

# puremagic answers with extensions; these are the ones worth a canonical name.
_PUREMAGIC_EXTENSIONS = frozenset(
    {
        "png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff", "webp", "heic", "ico", "emf", "wmf",
        "gz", "tgz", "bz2", "xz", "7z", "rar", "tar", "cab", "mp3", "wav", "mp4", "avi", "ps",
        "rtf",
    }
)  # fmt: skip

_COMMON_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"\x1f\x8b", "gz"),
)
_OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_TNEF_SIGNATURE = b"\x78\x9f\x3e\x22"
_MSI_CLSIDS = frozenset(
    {"000C1084-0000-0000-C000-000000000046", "000C1086-0000-0000-C000-000000000046"}
)
_MACHO_SIGNATURES = (
    b"\xfe\xed\xfa\xce",
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
)
_LNK_SIGNATURE = b"\x4c\x00\x00\x00\x01\x14\x02\x00"

# Header fields that mark the start of an RFC 822 message.
_MAIL_HEADERS = frozenset(
    {
        "from", "to", "subject", "date", "message-id", "mime-version", "received",
        "return-path", "delivered-to", "reply-to", "content-type", "x-mailer", "sender",
    }
)  # fmt: skip
# C0 control bytes that do not occur in text (tab, line breaks, form feed and the escape of
# ISO-2022 encodings do).
_CONTROL_BYTES = bytes(byte for byte in range(0x20) if byte not in b"\t\n\r\f\v\x1b")
_MIME_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]{1,64}/[a-z0-9!#$&^_.+-]{1,64}")
_HEADER_LINE = re.compile(r"^[!-9;-~]+:")
_EXTENSION = re.compile(r"^[a-z0-9]{1,10}$")
_GENERIC_CONTENT_TYPES = frozenset(
    {
        "application/octet-stream", "binary/octet-stream", "application/binary",
        "application/unknown", "application/x-unknown", "application/download",
        "application/force-download", "application/x-download", "unknown/unknown",
    }
)  # fmt: skip


@dataclass(frozen=True)
class ArchiveSummary:
    """What the central directory of a zip declares, read without expanding anything."""

    members: int
    uncompressed_size: int
    compressed_size: int
    max_ratio: float
    max_ratio_member: str | None
    encrypted: bool
    entries_read: bool


@dataclass(frozen=True)
class DetectedType:
    """The verdict on a file's type.

    `type` is a key of `TYPES` ("pdf", "xlsx", "exe", "unknown", ...); `by_content` says the
    bytes decided it rather than the name. `mismatch`, when set, is a reason for quarantine
    that a person understands ("named .pdf, content is a Windows executable (PE)"). `notes`
    record benign disagreements and damage found while looking.
    """

    type: str
    by_content: bool
    name_type: str | None = None
    declared_type: str | None = None
    mismatch: str | None = None
    archive: ArchiveSummary | None = None
    notes: tuple[str, ...] = ()

    @property
    def description(self) -> str:
        """The type in words, with its article: "a PDF document"."""
        return TYPES[self.type].description

    @property
    def mime(self) -> str:
        """The canonical MIME type of the detected type."""
        return TYPES[self.type].mime

    @property
    def family(self) -> str:
        """The family the type belongs to: "spreadsheet", "text", "image", "executable"..."""
        return TYPES[self.type].family


def type_from_name(name: str | None) -> str | None:
    """The canonical type that a file name's extension claims, or None when it claims none."""
    extension = extension_of(name)
    return EXTENSIONS.get(extension) if extension else None


def extension_of(name: str | None) -> str | None:
    """The last extension of a name, lower case without the dot, when it looks like one."""
    if not name:
        return None

    base = re.split(r"[/\\]", name)[-1].strip().rstrip(".")
    if "." not in base.strip("."):
        return None

    extension = base.rsplit(".", 1)[1].lower()
    return extension if _EXTENSION.match(extension) else None


def type_from_content_type(content_type: str | None) -> str | None:
    """The canonical type a declared MIME type claims; None for generic or unknown ones."""
    if not content_type:
        return None

    mime = content_type.split(";", 1)[0].strip().lower()
    if mime in _GENERIC_CONTENT_TYPES:
        return None
    return CONTENT_TYPES.get(mime)


def detect_type(
    source: bytes | IO[bytes], name: str | None = None, content_type: str | None = None
) -> DetectedType:
    """Detect the real type of a file from its bytes, its name and its declared content type.

    `source` is the whole content as bytes, or a seekable binary file (a zip's member names sit
    at its end). Reads the head, and for zip and OLE2 containers their directories; never
    expands anything. Never raises on hostile content: damage becomes a note.
    """
    fileobj: IO[bytes] = io.BytesIO(source) if isinstance(source, bytes) else source
    fileobj.seek(0)
    head = fileobj.read(HEAD_SIZE)
    fileobj.seek(0, io.SEEK_END)
    size = fileobj.tell()
    fileobj.seek(0)

    name_type = type_from_name(name)
    declared_type = type_from_content_type(content_type)

    notes: list[str] = []
    archive: ArchiveSummary | None = None
    if not head:
        content: str | None = "empty"
    elif head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        content, archive = _inspect_zip(fileobj, head, size, notes)
    elif head.startswith(_OLE_SIGNATURE):
        content = _inspect_ole(fileobj, notes)
    else:
        content = _binary_signature(head) or _sniff_text(head, size, name_type, declared_type)
        if content is None:
            content = _puremagic_type(head, name)

    return _verdict(content, name, name_type, content_type, declared_type, archive, notes)


def _verdict(
    content: str | None,
    name: str | None,
    name_type: str | None,
    content_type: str | None,
    declared_type: str | None,
    archive: ArchiveSummary | None,
    notes: list[str],
) -> DetectedType:
    """Weigh what the bytes say against the claims of the name and the declared type."""
    if content is None:
        # Declared types are often wrong; unrecognised bytes take a type from the name only.
        mismatch = None
        if name_type and TYPES[name_type].family in _PARSED_FAMILIES:
            mismatch = f"named .{extension_of(name)}, content is {TYPES['unknown'].description}"
        elif name_type:
            notes.append("content not recognised, type taken from the name")
        if declared_type and not name_type:
            notes.append(f"declared {_bare(content_type)}, content not recognised")
        return DetectedType(
            type=name_type or "unknown",
            by_content=False,
            name_type=name_type,
            declared_type=declared_type,
            mismatch=mismatch,
            notes=tuple(notes),
        )

    mismatch = _mismatch(content, name, name_type, content_type, declared_type)
    if declared_type and not _compatible(declared_type, content) and mismatch is None:
        notes.append(f"declared {_bare(content_type)}, content is {TYPES[content].description}")
    return DetectedType(
        type=content,
        by_content=True,
        name_type=name_type,
        declared_type=declared_type,
        mismatch=mismatch,
        archive=archive,
        notes=tuple(notes),
    )


def _mismatch(
    content: str,
    name: str | None,
    name_type: str | None,
    content_type: str | None,
    declared_type: str | None,
) -> str | None:
    """A quarantine reason when a claim about the file disagrees with its bytes in a way that
    matters, else None."""
    spec = TYPES[content]
    if content == "empty":
        return None

    if spec.family == "executable":
        if name_type and TYPES[name_type].family != "executable":
            return f"named .{extension_of(name)}, content is {spec.description}"
        if declared_type and TYPES[declared_type].family != "executable":
            return f"declared {_bare(content_type)}, content is {spec.description}"
        return None

    if name_type and not _compatible(name_type, content):
        return f"named .{extension_of(name)}, content is {spec.description}"
    return None


def _compatible(claimed: str, content: str) -> bool:
    """True when content of type `content` under a claim of `claimed` misleads nobody."""
    claimed_family = TYPES[claimed].family
    content_family = TYPES[content].family
    if claimed == content or claimed_family == content_family:
        return True
    if claimed == "zip" and content in _ZIP_BASED:
        return True
    if content_family in _COMPATIBLE_FAMILIES.get(claimed_family, frozenset()):
        return True
    if claimed_family == "other":
        # Signatures and the like: .asc is text, .p7s binary; neither is parsed.
        return True
    return claimed_family not in _CARED_FAMILIES and content_family not in _CARED_FAMILIES


def _bare(content_type: str | None) -> str:
    """The type/subtype of a declared content type, fit to quote in a reason."""
    match = _MIME_TYPE.match((content_type or "").strip().lower())
    return match.group(0) if match else "an unreadable content type"


def _binary_signature(head: bytes) -> str | None:
    """Signatures checked before anything else: programs, PDFs, TNEF and RTF."""
    if head.startswith(b"MZ"):
        return "exe" if _is_pe(head) else "dos-exe"
    if head.startswith(b"\x7fELF"):
        return "elf"
    if head.startswith(_MACHO_SIGNATURES):
        return "macho"
    if head.startswith(b"\xca\xfe\xba\xbe"):
        return "java"
    if head.startswith(_LNK_SIGNATURE):
        return "lnk"
    if head.startswith(b"#!"):
        return "script"
    if head.startswith(_TNEF_SIGNATURE):
        return "tnef"
    # Readers accept a PDF header anywhere in the first kilobyte, so a file may hide it there.
    if b"%PDF-" in head[:1024]:
        return "pdf"
    if head.startswith(b"{\\rtf"):
        return "rtf"
    # The commonest attachments answered here; puremagic's scan of its whole table costs
    # about a millisecond a file.
    for signature, kind in _COMMON_SIGNATURES:
        if head.startswith(signature):
            return kind
    return None


def _is_pe(head: bytes) -> bool:
    if len(head) < 64:
        return False

    (offset,) = struct.unpack_from("<I", head, 0x3C)
    return head[offset : offset + 4] == b"PE\x00\x00"


def _inspect_zip(
    fileobj: IO[bytes], head: bytes, size: int, notes: list[str]
) -> tuple[str, ArchiveSummary | None]:
    """Tell Office Open XML, OpenDocument, jar and apk from a plain zip by member names."""
    declared_entries = _zip_entry_count(fileobj, size)
    if declared_entries is not None and declared_entries > ZIP_ENTRIES_READ_MAX:
        summary = ArchiveSummary(declared_entries, 0, 0, 0.0, None, False, entries_read=False)
        return "zip", summary

    try:
        with zipfile.ZipFile(fileobj) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as error:
        notes.append(f"damaged zip: {error}")
        return "zip", None
    finally:
        fileobj.seek(0)

    names = {info.filename for info in infos}
    return _zip_kind(names, head), _summarise(infos)


def _zip_entry_count(fileobj: IO[bytes], size: int) -> int | None:
    """The entry count from the end-of-central-directory record, read without zipfile."""
    tail_size = min(size, 22 + 65535 + 20)
    fileobj.seek(size - tail_size)
    tail = fileobj.read(tail_size)
    fileobj.seek(0)

    end = tail.rfind(b"PK\x05\x06")
    if end < 0 or end + 22 > len(tail):
        return None

    (count,) = struct.unpack_from("<H", tail, end + 10)
    locator = end - 20
    if count == 0xFFFF and locator >= 0 and tail[locator : locator + 4] == b"PK\x06\x07":
        (zip64_end,) = struct.unpack_from("<Q", tail, locator + 8)
        if zip64_end + 56 <= size:
            fileobj.seek(zip64_end)
            record = fileobj.read(56)
            fileobj.seek(0)
            if record.startswith(b"PK\x06\x06") and len(record) == 56:
                (count,) = struct.unpack_from("<Q", record, 32)
    return int(count)


def _zip_kind(names: set[str], head: bytes) -> str:
    if "xl/workbook.xml" in names:
        return "xlsm" if "xl/vbaProject.bin" in names else "xlsx"
    if "xl/workbook.bin" in names:
        return "xlsb"
    if "word/document.xml" in names:
        return "docm" if "word/vbaProject.bin" in names else "docx"
    if "ppt/presentation.xml" in names:
        return "pptm" if "ppt/vbaProject.bin" in names else "pptx"
    if "AndroidManifest.xml" in names and "classes.dex" in names:
        return "apk"
    if "META-INF/MANIFEST.MF" in names and any(n.endswith(".class") for n in names):
        return "jar"
    if "mimetype" in names and "content.xml" in names:
        return _odf_kind(head)
    return "zip"


def _odf_kind(head: bytes) -> str:
    # OpenDocument stores its `mimetype` member first and uncompressed, so its text sits at a
    # fixed offset in the head and no member has to be read.
    mimetype = head[38:120].split(b"PK", 1)[0] if head[30:38] == b"mimetype" else b""
    for suffix, kind in (
        (b"spreadsheet", "ods"),
        (b"text", "odt"),
        (b"presentation", "odp"),
    ):
        if mimetype.startswith(b"application/vnd.oasis.opendocument." + suffix):
            return kind
    return "odf"


def _summarise(infos: Iterable[zipfile.ZipInfo]) -> ArchiveSummary:
    members = 0
    uncompressed = compressed = 0
    max_ratio = 0.0
    max_ratio_member: str | None = None
    encrypted = False
    for info in infos:
        if info.is_dir():
            continue

        members += 1
        uncompressed += info.file_size
        compressed += info.compress_size
        encrypted = encrypted or bool(info.flag_bits & 0x1)
        if info.file_size >= RATIO_MEMBER_MIN:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > max_ratio:
                max_ratio, max_ratio_member = ratio, info.filename
    return ArchiveSummary(
        members, uncompressed, compressed, max_ratio, max_ratio_member, encrypted, True
    )


def _inspect_ole(fileobj: IO[bytes], notes: list[str]) -> str:
    """Tell xls, doc, ppt, msg, msi and encrypted Office files apart by their OLE2 streams."""
    try:
        with olefile.OleFileIO(fileobj) as ole:
            streams = {"/".join(path) for path in ole.listdir(streams=True, storages=True)}
            clsid = (ole.root.clsid or "").upper() if ole.root is not None else ""
    except Exception as error:
        # olefile raises a wide range of exceptions on damaged files; the verdict is the same.
        notes.append(f"damaged OLE2 file: {error}")
        return "unknown"
    finally:
        fileobj.seek(0)

    if clsid in _MSI_CLSIDS:
        return "msi"
    if "EncryptedPackage" in streams and "EncryptionInfo" in streams:
        return "encrypted-office"
    if "Workbook" in streams or "Book" in streams:
        return "xls"
    if "WordDocument" in streams:
        return "doc"
    if "PowerPoint Document" in streams:
        return "ppt"
    if "__properties_version1.0" in streams or any(s.startswith("__substg1.0_") for s in streams):
        return "msg"
    notes.append("OLE2 compound file of unknown kind")
    return "unknown"


def _sniff_text(
    head: bytes, size: int, name_type: str | None, declared_type: str | None
) -> str | None:
    """The text type of the head, or None when the head is not text."""
    truncated = size > len(head)
    text = _decode_text(head, truncated=truncated)
    if text is None:
        return None

    markup = _markup_kind(text)
    if markup in {"html", "svg", "ps"}:
        return markup
    # Within text, the name tells what the sniff cannot: a .tsv holding CSV-like lines, a
    # script, an armoured signature. text/plain is every mailer's default, so it tells nothing.
    for claimed in (name_type, None if declared_type == "txt" else declared_type):
        if claimed and (TYPES[claimed].family in {"text", "other"} or claimed == "script"):
            return claimed
    return markup or _plain_text_kind(text, truncated=truncated)


def _decode_text(head: bytes, *, truncated: bool) -> str | None:
    """The head as text, or None when it is binary."""
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    elif head.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16-le" if head.startswith(b"\xff\xfe") else "utf-16-be"
        body = head[2:]
        return body[: len(body) - len(body) % 2].decode(encoding, errors="replace")

    # Text has no NUL and few other control characters, whatever its 8-bit encoding.
    if b"\x00" in head or _control_bytes(head) > len(head) // 100:
        return None

    try:
        return head.decode("utf-8") if not truncated else _decode_prefix(head)
    except UnicodeDecodeError:
        return head.decode("latin-1")


def _control_bytes(data: bytes) -> int:
    return len(data) - len(data.translate(None, _CONTROL_BYTES))


def _decode_prefix(head: bytes) -> str:
    # The head may end inside a multi-byte character: drop at most three trailing bytes.
    for cut in range(4):
        try:
            return head[: len(head) - cut].decode("utf-8")
        except UnicodeDecodeError as error:
            last_error = error
    raise last_error


def _markup_kind(text: str) -> str | None:
    """Text formats recognised by how they start: HTML, SVG, XML, PostScript, iCalendar..."""
    lowered = text.lstrip()[:512].lower()
    if lowered.startswith(("<!doctype html", "<html")) or re.match(r"<(head|body)[\s>]", lowered):
        return "html"
    if lowered.startswith(("<?xml", "<!doctype")) and re.search(r"<html[\s>]", lowered):
        return "html"
    if lowered.startswith("<svg") or (lowered.startswith("<?xml") and "<svg" in lowered):
        return "svg"
    for prefix, kind in (
        ("<?xml", "xml"),
        ("%!ps", "ps"),
        ("begin:vcalendar", "ics"),
        ("begin:vcard", "vcf"),
    ):
        if lowered.startswith(prefix):
            return kind
    return None


def _plain_text_kind(text: str, *, truncated: bool) -> str:
    """JSON, a mail message, delimited text or plain text, by sniffing the content."""
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        json_kind = _json_kind(stripped, truncated=truncated)
        if json_kind:
            return json_kind
    if _looks_like_mail(text):
        return "eml"
    return _delimited_kind(text, truncated=truncated) or "txt"


def _json_kind(text: str, *, truncated: bool) -> str | None:
    if not truncated and _parses_as_json(text):
        return "json"

    lines = [line for line in text.splitlines() if line.strip()]
    if truncated and lines:
        lines = lines[:-1]
    if len(lines) >= 2 and all(_parses_as_json(line) for line in lines):
        return "jsonl"
    return "json" if truncated and text.startswith(("{", "[")) else None


def _parses_as_json(line: str) -> bool:
    try:
        json.loads(line)
    except (ValueError, RecursionError):
        return False
    return True


def _looks_like_mail(text: str) -> bool:
    """True when the text starts with RFC 822 header fields, one of them a mail header."""
    lines = text.splitlines()
    if lines and lines[0].startswith("From "):
        lines = lines[1:]

    fields: list[str] = []
    for line in lines[:60]:
        if not line.strip():
            break
        if line[0] in " \t" and fields:
            continue
        if not _HEADER_LINE.match(line):
            return False
        fields.append(line.split(":", 1)[0].lower())
    return len(fields) >= 2 and any(field in _MAIL_HEADERS for field in fields)


def _delimited_kind(text: str, *, truncated: bool) -> str | None:
    """csv or tsv when the lines split into the same number of fields by one delimiter."""
    lines = text.splitlines()[:50]
    if truncated and len(lines) > 1:
        lines = lines[:-1]
    lines = [line for line in lines if line.strip()]
    if len(lines) < 2:
        return None

    for delimiter, kind in (("\t", "tsv"), (",", "csv"), (";", "csv"), ("|", "csv")):
        if not all(delimiter in line for line in lines[:2]):
            continue
        try:
            widths = {len(row) for row in csv.reader(lines, delimiter=delimiter)}
        except csv.Error:
            continue
        if len(widths) == 1 and widths.pop() >= 2:
            return kind
    return None


def _puremagic_type(head: bytes, name: str | None) -> str | None:
    try:
        matches = puremagic.magic_string(head, filename=name or None)
    except Exception:
        # PureError when nothing matches; anything else it raises on odd bytes means the same.
        return None

    for match in matches:
        extension: str = match.extension.lstrip(".").lower()
        if extension in _PUREMAGIC_EXTENSIONS:
            return EXTENSIONS.get(extension, extension)
    return None
