#include "nibble_scan.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the portable kernel reads the codes as little-endian 16-bit lanes"
#endif

// Every variant gives the exact sum: no product or partial sum comes near its lane's limit (see each).

/// Eight 16-bit lanes in the compiler's generic vectors (SSE2 on x86_64, NEON on arm64; GCC's vector extensions,
/// which clang has too). Arithmetic wraps in the unsigned type; the signed one only sign-extends by shifts.
typedef uint16_t lanes16 __attribute__((vector_size(16)));
typedef int16_t signedLanes16 __attribute__((vector_size(16)));

/// Reads a group's 16 code bytes as eight little-endian 16-bit lanes, lane j holding bytes 2j and 2j + 1: its
/// nibbles meet low[2j], high[2j], low[2j + 1] and high[2j + 1], which shifts take out of the level bytes read
/// the same way. One sum per nibble position: each lane of one gets a product of at most 15 · 127 = 1905 in
/// magnitude per group, and 17 groups (544 dimensions, NibbleCodes.maximumDimension) stay below 2¹⁵, so the
/// wrapped lanes hold the signed sums.
static void dots_portable(const int8_t *levels, const uint8_t *codes, size_t bytes, size_t rows, int32_t *dots) {
    const int8_t *high = levels + bytes;
    const lanes16 low4 = {15, 15, 15, 15, 15, 15, 15, 15};
    for (size_t r = 0; r < rows; r++) {
        const uint8_t *row = codes + r * bytes;
        lanes16 sum0 = {0}, sum1 = {0}, sum2 = {0}, sum3 = {0};
        for (size_t b = 0; b < bytes; b += 16) {
            lanes16 c, l, h;
            memcpy(&c, row + b, 16);
            memcpy(&l, levels + b, 16);
            memcpy(&h, high + b, 16);
            sum0 += (c & low4) * (lanes16)((signedLanes16)(l << 8) >> 8);
            sum1 += ((c >> 4) & low4) * (lanes16)((signedLanes16)(h << 8) >> 8);
            sum2 += ((c >> 8) & low4) * (lanes16)((signedLanes16)l >> 8);
            sum3 += (c >> 12) * (lanes16)((signedLanes16)h >> 8);
        }
        int32_t total = 0;
        for (int j = 0; j < 8; j++) total += (int16_t)sum0[j] + (int16_t)sum1[j] + (int16_t)sum2[j] + (int16_t)sum3[j];
        dots[r] = total;
    }
}

#if defined(__x86_64__)

// Run-time dispatch rather than -march: the package builds for the x86_64 baseline, and only these functions
// are compiled for the wider instructions, which run only where `nibble_scan_supports` found them.

/// Sums the int32 lanes of each of `a0`…`a3`: lane k of the result is the sum of `ak`.
__attribute__((target("avx2")))
static inline __m128i sum4_avx2(__m256i a0, __m256i a1, __m256i a2, __m256i a3) {
    __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(a0, a1), _mm256_hadd_epi32(a2, a3));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

/// One row's products in eight int32 lanes. `vpmaddubsw` multiplies unsigned codes (0…15) by signed levels
/// (−127…127) and adds pairs into int16: at most 2 · 15 · 127 = 3810 in magnitude, so it never saturates; up
/// to eight of them (four 32-byte chunks, low and high nibbles) are summed in int16 (≤ 30480) before
/// `vpmaddwd` with ones widens pairs into int32.
__attribute__((target("avx2")))
static inline __m256i row_avx2(const int8_t *low, const int8_t *high, const uint8_t *row, size_t bytes) {
    const __m256i low4 = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
    __m256i sum = _mm256_setzero_si256();
    size_t b = 0;
    while (b + 32 <= bytes) {
        __m256i narrow = _mm256_setzero_si256();
        for (size_t end = b + 128; b + 32 <= bytes && b < end; b += 32) {
            __m256i c = _mm256_loadu_si256((const __m256i *)(row + b));
            __m256i lo = _mm256_and_si256(c, low4), hi = _mm256_and_si256(_mm256_srli_epi16(c, 4), low4);
            narrow = _mm256_add_epi16(narrow, _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(low + b))));
            narrow = _mm256_add_epi16(narrow, _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(high + b))));
        }
        sum = _mm256_add_epi32(sum, _mm256_madd_epi16(narrow, ones));
    }
    if (b < bytes) {   // 16 bytes left (bytes is a multiple of 16)
        __m128i c = _mm_loadu_si128((const __m128i *)(row + b));
        __m128i lo = _mm_and_si128(c, _mm_set1_epi8(15)), hi = _mm_and_si128(_mm_srli_epi16(c, 4), _mm_set1_epi8(15));
        __m128i narrow = _mm_add_epi16(_mm_maddubs_epi16(lo, _mm_loadu_si128((const __m128i *)(low + b))),
                                       _mm_maddubs_epi16(hi, _mm_loadu_si128((const __m128i *)(high + b))));
        sum = _mm256_add_epi32(sum, _mm256_zextsi128_si256(_mm_madd_epi16(narrow, _mm_set1_epi16(1))));
    }
    return sum;
}

/// Four rows at a time, so one horizontal reduction serves four rows.
__attribute__((target("avx2")))
static void dots_avx2(const int8_t *levels, const uint8_t *codes, size_t bytes, size_t rows, int32_t *dots) {
    const int8_t *high = levels + bytes;
    size_t r = 0;
    for (; r + 4 <= rows; r += 4) {
        const uint8_t *row = codes + r * bytes;
        __m128i sums = sum4_avx2(row_avx2(levels, high, row, bytes), row_avx2(levels, high, row + bytes, bytes),
                                 row_avx2(levels, high, row + 2 * bytes, bytes), row_avx2(levels, high, row + 3 * bytes, bytes));
        _mm_storeu_si128((__m128i *)(dots + r), sums);
    }
    for (; r < rows; r++) {
        const __m256i zero = _mm256_setzero_si256();
        dots[r] = _mm_cvtsi128_si32(sum4_avx2(row_avx2(levels, high, codes + r * bytes, bytes), zero, zero, zero));
    }
}

/// One row's products in sixteen int32 lanes: `vpdpbusd` multiplies unsigned codes by signed levels and adds
/// each four products into an int32 lane directly (no int16 step, nothing to saturate). Low and high nibbles
/// accumulate separately, two dependency chains instead of one.
__attribute__((target("avx512bw,avx512vl,avx512vnni")))
static inline __m512i row_vnni(const int8_t *low, const int8_t *high, const uint8_t *row, size_t bytes) {
    const __m512i low4 = _mm512_set1_epi8(15);
    __m512i sumLow = _mm512_setzero_si512(), sumHigh = _mm512_setzero_si512();
    size_t b = 0;
    for (; b + 64 <= bytes; b += 64) {
        __m512i c = _mm512_loadu_si512(row + b);
        sumLow = _mm512_dpbusd_epi32(sumLow, _mm512_and_si512(c, low4), _mm512_loadu_si512(low + b));
        sumHigh = _mm512_dpbusd_epi32(sumHigh, _mm512_and_si512(_mm512_srli_epi16(c, 4), low4), _mm512_loadu_si512(high + b));
    }
    if (b < bytes) {   // 16, 32 or 48 bytes left: masked loads read nothing past them
        __mmask64 mask = (~(__mmask64)0) >> (64 - (bytes - b));
        __m512i c = _mm512_maskz_loadu_epi8(mask, row + b);
        sumLow = _mm512_dpbusd_epi32(sumLow, _mm512_and_si512(c, low4), _mm512_maskz_loadu_epi8(mask, low + b));
        sumHigh = _mm512_dpbusd_epi32(sumHigh, _mm512_and_si512(_mm512_srli_epi16(c, 4), low4),
                                      _mm512_maskz_loadu_epi8(mask, high + b));
    }
    __m512i sum = _mm512_add_epi32(sumLow, sumHigh);
    return sum;
}

/// The 512-bit sum folded into eight lanes.
__attribute__((target("avx512bw,avx512vl,avx512vnni")))
static inline __m256i fold_vnni(__m512i sum) {
    return _mm256_add_epi32(_mm512_castsi512_si256(sum), _mm512_extracti64x4_epi64(sum, 1));
}

__attribute__((target("avx512bw,avx512vl,avx512vnni")))
static void dots_vnni(const int8_t *levels, const uint8_t *codes, size_t bytes, size_t rows, int32_t *dots) {
    const int8_t *high = levels + bytes;
    size_t r = 0;
    for (; r + 4 <= rows; r += 4) {
        const uint8_t *row = codes + r * bytes;
        __m128i sums = sum4_avx2(fold_vnni(row_vnni(levels, high, row, bytes)),
                                 fold_vnni(row_vnni(levels, high, row + bytes, bytes)),
                                 fold_vnni(row_vnni(levels, high, row + 2 * bytes, bytes)),
                                 fold_vnni(row_vnni(levels, high, row + 3 * bytes, bytes)));
        _mm_storeu_si128((__m128i *)(dots + r), sums);
    }
    for (; r < rows; r++) dots[r] = _mm512_reduce_add_epi32(row_vnni(levels, high, codes + r * bytes, bytes));
}

#endif

int nibble_scan_supports(int variant) {
    switch (variant) {
    case NIBBLE_SCAN_PORTABLE:
        return 1;
#if defined(__x86_64__)
    case NIBBLE_SCAN_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") ? 1 : 0;
    case NIBBLE_SCAN_AVX512_VNNI:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512vnni") ? 1 : 0;
#endif
    default:
        return 0;
    }
}

int nibble_scan_best_variant(void) {
    if (nibble_scan_supports(NIBBLE_SCAN_AVX512_VNNI)) return NIBBLE_SCAN_AVX512_VNNI;
    if (nibble_scan_supports(NIBBLE_SCAN_AVX2)) return NIBBLE_SCAN_AVX2;
    return NIBBLE_SCAN_PORTABLE;
}

void nibble_scan_dots(int variant, const int8_t *levels, const uint8_t *codes, size_t bytes, size_t rows,
                      int32_t *dots) {
    switch (variant) {
#if defined(__x86_64__)
    case NIBBLE_SCAN_AVX2:
        dots_avx2(levels, codes, bytes, rows, dots);
        return;
    case NIBBLE_SCAN_AVX512_VNNI:
        dots_vnni(levels, codes, bytes, rows, dots);
        return;
#endif
    default:
        dots_portable(levels, codes, bytes, rows, dots);
        return;
    }
}
