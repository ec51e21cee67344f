#ifndef NIBBLE_SCAN_H
#define NIBBLE_SCAN_H

#include <stddef.h>
#include <stdint.h>

/// The 4-bit first pass of the identity index scan (see PersonRows.swift, `NibbleCodes`): exact integer dot
/// products of one query with many rows of 4-bit codes.
///
/// A row is `bytes` bytes, each holding two codes 0...15 (low and high nibble). The query comes as `2 · bytes`
/// int8 levels in −127...127: first the level that meets each byte's low nibble, then the one that meets each
/// byte's high nibble (`NibbleCodes.scanLevels` puts them in that order). So
/// `dots[r] = Σ_b levels[b] · (row_r[b] & 15) + levels[bytes + b] · (row_r[b] >> 4)`, exact in int32.

/// The variants. Those using wider instructions are compiled for them with `target` attributes and only run
/// where `nibble_scan_supports` says the CPU has them, so the package needs no -march flags.
enum {
    /// C with generic 16-byte vectors (GCC vector extensions): every CPU, up to 544 dimensions.
    NIBBLE_SCAN_PORTABLE = 0,
    /// AVX2 `vpmaddubsw` + `vpmaddwd` (x86_64).
    NIBBLE_SCAN_AVX2 = 1,
    /// AVX-512 VNNI `vpdpbusd` (x86_64 with AVX512BW, AVX512VL and AVX512_VNNI).
    NIBBLE_SCAN_AVX512_VNNI = 2,
};

/// Whether this CPU (and OS) runs `variant`: 1 or 0.
int nibble_scan_supports(int variant);

/// The fastest variant this CPU runs.
int nibble_scan_best_variant(void);

/// `dots[r]` for the `rows` rows at `codes`, row `r` at `codes + r · bytes`. `bytes` is a multiple of 16 up to 272,
/// `levels` holds `2 · bytes` levels in −127...127, and `variant` is one `nibble_scan_supports` accepts.
void nibble_scan_dots(int variant, const int8_t *levels, const uint8_t *codes, size_t bytes, size_t rows,
                      int32_t *dots);

/// Asks the CPU to start loading the `bytes` bytes at `start` into its caches (one hint per 64-byte line) and
/// returns at once: the scan asks for the exact sum of the next row to re-check while it computes the current one,
/// so the two loads overlap instead of each waiting on memory.
static inline void nibble_scan_prefetch(const void *start, size_t bytes) {
    for (size_t offset = 0; offset < bytes; offset += 64) __builtin_prefetch((const char *)start + offset);
}

#endif
