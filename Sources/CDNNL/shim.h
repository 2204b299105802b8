// C shim for Debian's oneDNN 2.6 (libdnnl-dev), which ships no pkg-config file.
#ifndef GENERATIVE_CDNNL_SHIM_H
#define GENERATIVE_CDNNL_SHIM_H
#include <oneapi/dnnl/dnnl.h>
#include <malloc.h>

// glibc's allocator tuning (TensorStorage keeps freed tensor memory for reuse).
static inline void cgen_keep_freed_memory(int mmap_threshold, int trim_threshold) {
    mallopt(M_MMAP_THRESHOLD, mmap_threshold);
    mallopt(M_TRIM_THRESHOLD, trim_threshold);
}

// DNNL_MEMORY_ALLOCATE is a macro that does not import into Swift.
static inline void *cdnnl_memory_allocate(void) { return DNNL_MEMORY_ALLOCATE; }
static inline void *cdnnl_memory_none(void) { return DNNL_MEMORY_NONE; }

// oneDNN runs on GNU OpenMP; declared here so Swift can size its thread pool.
void omp_set_num_threads(int num_threads);
int omp_get_max_threads(void);
int omp_get_thread_num(void);
int omp_get_num_threads(void);
int omp_in_parallel(void);
// libgomp's entry point for a parallel region (what `#pragma omp parallel` compiles to). The Swift
// kernels run on oneDNN's OpenMP pool through it, so one pool serves everything: a second pool
// (Dispatch) competing with OpenMP's spin-waiting threads ran 3x slower.
void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned int flags);

// Helpers for the convolution primitives (CPUBackend.swift): dnnl_dims_t is a C array, which
// imports into Swift as a 12-tuple, so the 4-D descriptors are built here from scalars.

/// A 4-D f32 memory descriptor with dims (d0, d1, d2, d3) in oneDNN's logical order and a format tag.
static inline dnnl_status_t cdnnl_md_init_4d(dnnl_memory_desc_t *md, int64_t d0, int64_t d1, int64_t d2,
                                            int64_t d3, dnnl_format_tag_t tag) {
    dnnl_dims_t dims = {d0, d1, d2, d3};
    return dnnl_memory_desc_init_by_tag(md, 4, dims, dnnl_f32, tag);
}

/// A 1-D f32 memory descriptor (a bias vector).
static inline dnnl_status_t cdnnl_md_init_1d(dnnl_memory_desc_t *md, int64_t d0) {
    dnnl_dims_t dims = {d0};
    return dnnl_memory_desc_init_by_tag(md, 1, dims, dnnl_f32, dnnl_a);
}

/// A 2-D convolution descriptor (bias: the bias of a forward pass or the bias gradient of a
/// backward-weights pass, may be NULL). pass: 0 forward training, 1 forward inference, 2 backward data,
/// 3 backward weights. Dilation in oneDNN's convention (0 = dense). winograd: nonzero for Winograd's
/// algorithm (3x3, stride 1), else direct.
static inline dnnl_status_t cdnnl_conv2d_desc_init(dnnl_convolution_desc_t *cd, int pass,
        const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *weights, const dnnl_memory_desc_t *bias,
        const dnnl_memory_desc_t *dst,
        int64_t stride_h, int64_t stride_w, int64_t dil_h, int64_t dil_w,
        int64_t pad_t, int64_t pad_l, int64_t pad_b, int64_t pad_r, int winograd) {
    dnnl_dims_t strides = {stride_h, stride_w};
    dnnl_dims_t dilates = {dil_h, dil_w};
    dnnl_dims_t padding_l = {pad_t, pad_l};
    dnnl_dims_t padding_r = {pad_b, pad_r};
    dnnl_alg_kind_t alg = dnnl_convolution_direct;
    if (winograd) alg = dnnl_convolution_winograd;
    switch (pass) {
    case 0:
    case 1:
        return dnnl_dilated_convolution_forward_desc_init(cd, pass == 0 ? dnnl_forward_training
                : dnnl_forward_inference, alg, src, weights, bias, dst, strides, dilates,
                padding_l, padding_r);
    case 2:
        return dnnl_dilated_convolution_backward_data_desc_init(cd, alg, src, weights, dst,
                strides, dilates, padding_l, padding_r);
    case 3:
        return dnnl_dilated_convolution_backward_weights_desc_init(cd, alg, src, weights,
                bias, dst, strides, dilates, padding_l, padding_r);
    default:
        return dnnl_invalid_arguments;
    }
}

/// A 2-D f32 memory descriptor with dims (d0, d1) and element strides (s0, s1): (M, K) row-major is
/// strides (K, 1); PyTorch's (N, K) weight read as the (K, N) matrix it transposes is strides (1, K).
static inline dnnl_status_t cdnnl_md_init_2d(dnnl_memory_desc_t *md, int64_t d0, int64_t d1, int64_t s0,
                                            int64_t s1) {
    dnnl_dims_t dims = {d0, d1};
    dnnl_dims_t strides = {s0, s1};
    return dnnl_memory_desc_init_by_strides(md, 2, dims, dnnl_f32, strides);
}

/// The implementation name oneDNN chose for a primitive descriptor (e.g. "jit:avx512_core").
static inline const char *cdnnl_impl_info(const_dnnl_primitive_desc_t pd) {
    const char *name = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, (void *)&name) != dnnl_success) return NULL;
    return name;
}
#endif
