// AdaGN forward as CUDA C++ kernels, built just in time by diffusegae/kernels/cuda_adagn.py.
//
// Same algorithm as the Triton kernel (kernels/triton_adagn.py): a group of an NCHW tensor is one contiguous
// run of L = CPG·HW elements. Values are shifted by a pivot (the group's first element), each thread keeps
// (n, mean, M2) over packs of VEC elements (two passes over the pack in registers, Chan merge into the
// running triple), and threads, warps and split blocks are merged with Chan's formula. The normalize pass
// folds the AdaGN vectors of a channel into one scale and one shift:
//   y = ((x − p) − μ)·A_c + B_c,  A_c = rstd·γ_c·(1+t_s)·(1+z_s),  B_c = (β_c·(1+t_s) + t_b)·(1+z_s) [+ z_b]
// then SiLU. x is read twice and y written once.
//
// Paths: fused (grid B·G: one block per group, statistics then normalize) and split (grid B·G × S when B·G
// is below the SM count: S blocks write partial statistics, then S blocks merge them and normalize).

#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/extension.h>

#include <cstdint>

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

struct Stats {
  float n;
  float mean;
  float m2;
};

__device__ __forceinline__ Stats chan_merge(Stats a, Stats b) {
  const float n = a.n + b.n;
  if (n == 0.f) return a;
  const float delta = b.mean - a.mean;
  const float wb = b.n / n;
  return {n, a.mean + delta * wb, a.m2 + b.m2 + delta * delta * a.n * wb};
}

__device__ __forceinline__ Stats warp_merge(Stats s) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    Stats other{__shfl_down_sync(0xffffffffu, s.n, offset), __shfl_down_sync(0xffffffffu, s.mean, offset),
                __shfl_down_sync(0xffffffffu, s.m2, offset)};
    s = chan_merge(s, other);
  }
  return s;
}

// Every thread of the block gets the block's merged statistics.
__device__ Stats block_merge(Stats s) {
  __shared__ Stats per_warp[kWarps];
  __shared__ Stats result;
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  s = warp_merge(s);
  if (lane == 0) per_warp[warp] = s;
  __syncthreads();
  if (warp == 0) {
    s = lane < kWarps ? per_warp[lane] : Stats{0.f, 0.f, 0.f};
    s = warp_merge(s);
    if (lane == 0) result = s;
  }
  __syncthreads();
  return result;
}

template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) Pack {
  T v[VEC];
};

struct Params {
  const float* gamma;
  const float* beta;
  const float* t_scale;
  const float* t_shift;
  const float* z_scale;
  const float* z_shift;  // nullptr in mode "scale"
  int64_t ts_stride, tb_stride, zs_stride, zb_stride;  // row strides of the [B, C] vectors
  int cpg;  // channels per group
  int hw;
  int groups;
  float eps;
  bool silu;
};

// Statistics of group elements [begin, end) (multiples of VEC), shifted by the pivot; merged over the block.
template <typename T, int VEC>
__device__ Stats range_stats(const T* __restrict__ x, int64_t begin, int64_t end, float pivot) {
  Stats s{0.f, 0.f, 0.f};
  for (int64_t i = begin + static_cast<int64_t>(threadIdx.x) * VEC; i < end; i += kThreads * VEC) {
    const Pack<T, VEC> pack = *reinterpret_cast<const Pack<T, VEC>*>(x + i);
    float v[VEC];
    float sum = 0.f;
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      v[k] = static_cast<float>(pack.v[k]) - pivot;
      sum += v[k];
    }
    const float mean = sum / VEC;
    float m2 = 0.f;
#pragma unroll
    for (int k = 0; k < VEC; ++k) m2 += (v[k] - mean) * (v[k] - mean);
    s = chan_merge(s, Stats{static_cast<float>(VEC), mean, m2});
  }
  return block_merge(s);
}

// Normalize group elements [begin, end) of sample b, group g. A pack never crosses a channel (VEC divides HW);
// each thread walks channels incrementally (no division per element) and refolds A, B when its channel changes.
template <typename T, int VEC>
__device__ void range_apply(const T* __restrict__ x, T* __restrict__ y, int64_t begin, int64_t end, float pivot,
                            float mean, float rstd, const Params& p, int b, int g) {
  int64_t i = begin + static_cast<int64_t>(threadIdx.x) * VEC;
  if (i >= end) return;
  constexpr int step = kThreads * VEC;
  const int dc = step / p.hw;
  const int dhw = step % p.hw;
  int c = static_cast<int>(i / p.hw);
  int hw = static_cast<int>(i % p.hw);
  int folded = -1;
  float scale = 0.f, shift = 0.f;
  for (; i < end; i += step) {
    if (c != folded) {
      const int ch = g * p.cpg + c;
      const float ts = 1.f + p.t_scale[b * p.ts_stride + ch];
      const float zs = 1.f + p.z_scale[b * p.zs_stride + ch];
      scale = rstd * p.gamma[ch] * ts * zs;
      shift = (p.beta[ch] * ts + p.t_shift[b * p.tb_stride + ch]) * zs;
      if (p.z_shift != nullptr) shift += p.z_shift[b * p.zb_stride + ch];
      folded = c;
    }
    const Pack<T, VEC> in = *reinterpret_cast<const Pack<T, VEC>*>(x + i);
    Pack<T, VEC> out;
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      float o = ((static_cast<float>(in.v[k]) - pivot) - mean) * scale + shift;
      if (p.silu) o = o / (1.f + expf(-o));
      out.v[k] = static_cast<T>(o);
    }
    *reinterpret_cast<Pack<T, VEC>*>(y + i) = out;
    hw += dhw;
    c += dc;
    if (hw >= p.hw) {
      hw -= p.hw;
      ++c;
    }
  }
}

template <typename T, int VEC>
__global__ void __launch_bounds__(kThreads) fused_kernel(const T* __restrict__ x, T* __restrict__ y, Params p) {
  const int bg = blockIdx.x;
  const int64_t length = static_cast<int64_t>(p.cpg) * p.hw;
  const int64_t base = bg * length;
  const float pivot = static_cast<float>(x[base]);
  const Stats s = range_stats<T, VEC>(x + base, 0, length, pivot);
  const float rstd = rsqrtf(s.m2 / s.n + p.eps);
  range_apply<T, VEC>(x + base, y + base, 0, length, pivot, s.mean, rstd, p, bg / p.groups, bg % p.groups);
}

template <typename T, int VEC>
__global__ void __launch_bounds__(kThreads)
    partial_stats_kernel(const T* __restrict__ x, float* __restrict__ partials, Params p, int64_t chunk) {
  const int bg = blockIdx.x;
  const int s = blockIdx.y;
  const int64_t length = static_cast<int64_t>(p.cpg) * p.hw;
  const int64_t base = bg * length;
  const int64_t begin = s * chunk;
  const int64_t end = begin + chunk < length ? begin + chunk : length;
  const float pivot = static_cast<float>(x[base]);
  const Stats st = range_stats<T, VEC>(x + base, begin, end, pivot);  // {0,0,0} for an empty range
  if (threadIdx.x == 0) {
    float* out = partials + (static_cast<int64_t>(bg) * gridDim.y + s) * 3;
    out[0] = st.n;
    out[1] = st.mean;
    out[2] = st.m2;
  }
}

template <typename T, int VEC>
__global__ void __launch_bounds__(kThreads) split_apply_kernel(const T* __restrict__ x, T* __restrict__ y,
                                                               const float* __restrict__ partials, Params p,
                                                               int64_t chunk) {
  __shared__ float mean_rstd[2];
  const int bg = blockIdx.x;
  const int s = blockIdx.y;
  if (threadIdx.x == 0) {
    Stats merged{0.f, 0.f, 0.f};
    const float* part = partials + static_cast<int64_t>(bg) * gridDim.y * 3;
    for (int k = 0; k < static_cast<int>(gridDim.y); ++k) {
      merged = chan_merge(merged, Stats{part[3 * k], part[3 * k + 1], part[3 * k + 2]});
    }
    mean_rstd[0] = merged.mean;
    mean_rstd[1] = rsqrtf(merged.m2 / merged.n + p.eps);
  }
  __syncthreads();
  const int64_t length = static_cast<int64_t>(p.cpg) * p.hw;
  const int64_t base = bg * length;
  const int64_t begin = s * chunk;
  const int64_t end = begin + chunk < length ? begin + chunk : length;
  const float pivot = static_cast<float>(x[base]);
  range_apply<T, VEC>(x + base, y + base, begin, end, pivot, mean_rstd[0], mean_rstd[1], p, bg / p.groups,
                      bg % p.groups);
}

template <typename T, int VEC>
void launch(const torch::Tensor& x, torch::Tensor& y, const Params& p, int64_t bg, int64_t split) {
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const T* xp = reinterpret_cast<const T*>(x.data_ptr());
  T* yp = reinterpret_cast<T*>(y.data_ptr());
  if (split == 1) {
    fused_kernel<T, VEC><<<static_cast<unsigned>(bg), kThreads, 0, stream>>>(xp, yp, p);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return;
  }
  const int64_t length = static_cast<int64_t>(p.cpg) * p.hw;
  int64_t chunk = (length + split - 1) / split;
  chunk = (chunk + VEC - 1) / VEC * VEC;  // every block starts on a pack boundary
  auto partials = torch::empty({bg * split * 3}, x.options().dtype(torch::kFloat32));
  const dim3 grid(static_cast<unsigned>(bg), static_cast<unsigned>(split));
  partial_stats_kernel<T, VEC><<<grid, kThreads, 0, stream>>>(xp, partials.data_ptr<float>(), p, chunk);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  split_apply_kernel<T, VEC><<<grid, kThreads, 0, stream>>>(xp, yp, partials.data_ptr<float>(), p, chunk);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

torch::Tensor row_vector(const torch::Tensor& v, int64_t channels, const char* name) {
  TORCH_CHECK(v.is_cuda() && v.dim() == 2 && v.size(1) == channels, name, " must be a CUDA [B, ", channels,
              "] tensor");
  auto f = v.to(torch::kFloat32);
  return f.stride(1) == 1 ? f : f.contiguous();
}

}  // namespace

torch::Tensor adagn_forward(const torch::Tensor& h, const torch::Tensor& gamma, const torch::Tensor& beta,
                            const torch::Tensor& t_scale, const torch::Tensor& t_shift,
                            const torch::Tensor& z_scale, const c10::optional<torch::Tensor>& z_shift,
                            int64_t groups, double eps, bool silu, int64_t split) {
  TORCH_CHECK(h.is_cuda() && h.dim() >= 2, "h must be a CUDA tensor [B, C, *spatial]");
  TORCH_CHECK(split >= 1 && split <= 65535, "split out of range");
  const c10::cuda::CUDAGuard guard(h.device());
  const int64_t batch = h.size(0);
  const int64_t channels = h.size(1);
  TORCH_CHECK(groups > 0 && channels % groups == 0, "channels must be divisible by groups");
  auto x = h.contiguous();
  auto y = torch::empty_like(x);
  if (x.numel() == 0) return y;
  const int64_t hw = x.numel() / (batch * channels);
  TORCH_CHECK(hw <= INT32_MAX && channels <= INT32_MAX, "feature map too large");

  auto g = gamma.to(torch::kFloat32).contiguous();
  auto bt = beta.to(torch::kFloat32).contiguous();
  TORCH_CHECK(g.numel() == channels && bt.numel() == channels, "gamma and beta must have C elements");
  auto ts = row_vector(t_scale, channels, "t_scale");
  auto tb = row_vector(t_shift, channels, "t_shift");
  auto zs = row_vector(z_scale, channels, "z_scale");
  torch::Tensor zb;
  if (z_shift.has_value()) zb = row_vector(*z_shift, channels, "z_shift");

  Params p;
  p.gamma = g.data_ptr<float>();
  p.beta = bt.data_ptr<float>();
  p.t_scale = ts.data_ptr<float>();
  p.t_shift = tb.data_ptr<float>();
  p.z_scale = zs.data_ptr<float>();
  p.z_shift = zb.defined() ? zb.data_ptr<float>() : nullptr;
  p.ts_stride = ts.stride(0);
  p.tb_stride = tb.stride(0);
  p.zs_stride = zs.stride(0);
  p.zb_stride = zb.defined() ? zb.stride(0) : 0;
  p.cpg = static_cast<int>(channels / groups);
  p.hw = static_cast<int>(hw);
  p.groups = static_cast<int>(groups);
  p.eps = static_cast<float>(eps);
  p.silu = silu;
  const int64_t bg = batch * groups;

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "adagn_forward", [&] {
    constexpr int kVec = 16 / sizeof(scalar_t);  // 16-byte loads and stores
    const bool aligned = reinterpret_cast<uintptr_t>(x.data_ptr()) % 16 == 0 &&
                         reinterpret_cast<uintptr_t>(y.data_ptr()) % 16 == 0;
    if (aligned && hw % kVec == 0) {
      launch<scalar_t, kVec>(x, y, p, bg, split);
    } else {
      launch<scalar_t, 1>(x, y, p, bg, split);
    }
  });
  return y;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &adagn_forward, "AdaGN forward (fused GroupNorm, time and z_sem scale/shift, SiLU)");
}
