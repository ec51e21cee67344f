// exempi's C API (the Adobe XMP Toolkit), from Debian's libexempi-dev: `xmp write` parses, edits and serialises
// XMP sidecars with it (XMPToolkit is its only user; nothing vendored).
#ifndef PHOTO_SORTER_CEXEMPI_SHIM_H
#define PHOTO_SORTER_CEXEMPI_SHIM_H
#include <exempi/xmp.h>
#endif
