/*
 * decode.c: percept_core.h from C. Loads a decoder blob, decodes x.bin with it, prints the
 * FNV-1a hash of the outputs (as the QEMU firmware does) and the codes its error paths return.
 *
 *     cc -std=c11 -Iinclude examples/decode.c libpercept_core_c.a -lm -o decode
 *     ./decode dense.safetensors x.bin
 *
 * Prints `key value` lines (tests/firmware.rs compares them with the host's Rust decode):
 *     size <sizeof(percept_decoder) per library>, align <its alignment>
 *     sizes <voxels> <outputs> <scratch>
 *     hash <FNV-1a of the outputs, 16 hex digits>
 *     truncated <return of init on the blob minus its last byte>
 *     short <return of init on the first 4 bytes>
 *     misaligned <return of init on a copy of the blob one byte off alignment>
 *     scratch_short <return of decode with a scratch one float short>
 *     null <return of init with a null blob>
 *     unloaded <return of decode on the decoder the failed init left> <voxels it reports>
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "percept_core.h"

/* Reads a whole file into 8-byte aligned memory (the decoder requires it); exits on error. */
static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f || fseek(f, 0, SEEK_END) != 0) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(2);
    }
    long n = ftell(f);
    rewind(f);
    uint64_t *words = calloc((size_t)n / 8 + 1, 8);
    if (n < 0 || !words || fread(words, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(2);
    }
    fclose(f);
    *len = (size_t)n;
    return (uint8_t *)words;
}

static uint64_t fnv1a(const float *v, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &v[i], 4);
        for (int b = 0; b < 4; b++) { /* little-endian bytes, as to_le_bytes */
            h ^= (bits >> (8 * b)) & 0xff;
            h *= 0x00000100000001b3ull;
        }
    }
    return h;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s decoder.safetensors x.bin\n", argv[0]);
        return 2;
    }
    printf("size %zu\nalign %zu\n", percept_decoder_size(), percept_decoder_align());
    if (percept_decoder_size() != sizeof(percept_decoder) || percept_decoder_align() != _Alignof(percept_decoder)) {
        fprintf(stderr, "percept_core.h does not match the library\n");
        return 1;
    }

    size_t blob_len, x_len;
    uint8_t *blob = read_file(argv[1], &blob_len);
    float *x = (float *)read_file(argv[2], &x_len); /* little-endian host assumed */
    if (((uintptr_t)blob & 7) != 0) {
        fprintf(stderr, "blob not 8-byte aligned\n");
        return 1;
    }

    static percept_decoder d;
    int32_t rc = percept_decoder_init(&d, blob, blob_len);
    if (rc != 0) {
        fprintf(stderr, "percept_decoder_init: %d\n", (int)rc);
        return 1;
    }
    size_t voxels, outputs, scratch_len;
    percept_sizes(&d, &voxels, &outputs, &scratch_len);
    printf("sizes %zu %zu %zu\n", voxels, outputs, scratch_len);
    if (voxels > x_len / 4) {
        fprintf(stderr, "x.bin holds %zu voxels, the decoder needs %zu\n", x_len / 4, voxels);
        return 1;
    }
    float *scratch = malloc(scratch_len * sizeof(float));
    float *out = malloc(outputs * sizeof(float));
    if (!scratch || !out) return 2;
    rc = percept_decode(&d, x, voxels, scratch, scratch_len, out, outputs);
    if (rc != 0) {
        fprintf(stderr, "percept_decode: %d\n", (int)rc);
        return 1;
    }
    printf("hash %016llx\n", (unsigned long long)fnv1a(out, outputs));

    /* Error paths: each returns a negative code and leaves the decoder unusable. */
    percept_decoder bad;
    printf("truncated %d\n", (int)percept_decoder_init(&bad, blob, blob_len - 1));
    printf("short %d\n", (int)percept_decoder_init(&bad, blob, 4));
    uint8_t *mis = (uint8_t *)calloc(blob_len / 8 + 2, 8); /* aligned, so mis + 1 is not */
    if (!mis) return 2;
    memcpy(mis + 1, blob, blob_len);
    printf("misaligned %d\n", (int)percept_decoder_init(&bad, mis + 1, blob_len));
    printf("scratch_short %d\n", (int)percept_decode(&d, x, voxels, scratch, scratch_len - 1, out, outputs));
    printf("null %d\n", (int)percept_decoder_init(&bad, NULL, blob_len));
    size_t bad_voxels = 1;
    percept_sizes(&bad, &bad_voxels, NULL, NULL);
    printf("unloaded %d %zu\n", (int)percept_decode(&bad, x, voxels, scratch, scratch_len, out, outputs), bad_voxels);

    free(mis);
    free(out);
    free(scratch);
    free(x);
    free(blob);
    return 0;
}
