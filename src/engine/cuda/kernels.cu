// minivgg's CUDA kernels, compiled at run time by NVRTC. Each mirrors one CPU function of
// src/engine (named in its comment) and computes the same values in the same precision.
// Each has a typed launcher in kernels.rs, a struct whose fields are its parameters in
// order, under the same section headings as here. Scalar parameters are all 8 bytes wide
// (long long, double) so the host passes every argument as one u64.

typedef unsigned long long u64;
typedef long long i64;
typedef unsigned char u8;

#define GRID_STRIDE(i, n) \
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < (n); i += (i64)blockDim.x * gridDim.x)

// ==== Step state and batches ====

// Step state shared by the kernels of one captured graph (the host never touches it mid-epoch).
#define STATE_TRAIN_STEPS 0 // training passes done: selects dropout masks
#define STATE_ITERATIONS 1  // SGD updates done: the decayed learning rate
#define STATE_CURSOR 2      // first sample of the current batch in the epoch's order
#define STATE_AUGMENT_KEY 3 // data::augment::epoch_key of the epoch under way

// counter_hash::mix64, bit for bit (dropout masks and augmentation draws).
__device__ u64 mix64(u64 z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// A sum over the block (blockDim.x a power of two, at most 256), returned to every thread.
__device__ double block_sum(double v, double* shared) {
    shared[threadIdx.x] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) shared[threadIdx.x] += shared[threadIdx.x + s];
        __syncthreads();
    }
    double total = shared[0];
    __syncthreads();
    return total;
}

// data::batches::gather: the batch at the cursor, NHWC f32 in [0, 1], and its labels; with
// `augment`, each image cropped and flipped as data::augment::draw says under the epoch's key.
extern "C" __global__ void gather_batch(const u8* images, const u8* labels, const unsigned int* order,
                                        const u64* state, i64 n, i64 height, i64 width, i64 channels,
                                        i64 augment, i64 pad, float* out, int* out_labels) {
    i64 cursor = (i64)state[STATE_CURSOR];
    i64 image_len = height * width * channels;
    GRID_STRIDE(i, n * image_len) {
        i64 s = i / image_len, j = i % image_len;
        u64 src = order[cursor + s];
        if (j == 0) out_labels[s] = labels[src];
        if (!augment) {
            out[i] = (float)images[src * image_len + j] / 255.0f;
            continue;
        }
        // data::augment::draw and CropFlip::source.
        u64 bits = mix64(state[STATE_AUGMENT_KEY] + (src + 1) * 0x9E3779B97F4A7C15ULL);
        i64 dy = (i64)(((bits & 0xFFFF) * (2 * pad + 1)) >> 16) - pad;
        i64 dx = (i64)((((bits >> 16) & 0xFFFF) * (2 * pad + 1)) >> 16) - pad;
        i64 c = j % channels, x = (j / channels) % width, y = j / (channels * width);
        if ((bits >> 32) & 1) x = width - 1 - x;
        i64 sy = y + dy, sx = x + dx;
        bool inside = sy >= 0 && sy < height && sx >= 0 && sx < width;
        out[i] = inside ? (float)images[src * image_len + (sy * width + sx) * channels + c] / 255.0f : 0.0f;
    }
}

// The epoch's augmentation key, set before the epoch's passes are replayed.
extern "C" __global__ void set_augment_key(u64* state, u64 key) { state[STATE_AUGMENT_KEY] = key; }

// The end of a pass (engine::Network::train_batch's count): the cursor moves on, and a
// training pass moves dropout on to the next step's masks.
extern "C" __global__ void end_pass(u64* state, i64 n, i64 training) {
    state[STATE_CURSOR] += n;
    if (training) state[STATE_TRAIN_STEPS] += 1;
}

// After sgd_step: one more update done (engine::sgd::Sgd::iterations).
extern "C" __global__ void count_update(u64* state) { state[STATE_ITERATIONS] += 1; }

extern "C" __global__ void reset_cursor(u64* state) { state[STATE_CURSOR] = 0; }

// ==== Convolution (layers/conv.rs, cuda/layers/conv.rs) ====

// cpu::im2col::im2col
extern "C" __global__ void im2col(const float* x, float* cols, i64 n, i64 h, i64 w, i64 c, i64 k) {
    i64 patch = k * k * c, pad = k / 2;
    GRID_STRIDE(i, n * h * w * patch) {
        i64 row = i / patch, p = i % patch;
        i64 ch = p % c, tap = p / c, kx = tap % k, ky = tap / k;
        i64 ox = row % w, oy = (row / w) % h, img = row / (w * h);
        i64 iy = oy + ky - pad, ix = ox + kx - pad;
        cols[i] = (iy >= 0 && iy < h && ix >= 0 && ix < w) ? x[((img * h + iy) * w + ix) * c + ch] : 0.0f;
    }
}

// cpu::im2col::col2im, as a gather (one thread per input value): no atomics, deterministic.
extern "C" __global__ void col2im(const float* cols, float* dx, i64 n, i64 h, i64 w, i64 c, i64 k) {
    i64 patch = k * k * c, pad = k / 2;
    GRID_STRIDE(i, n * h * w * c) {
        i64 ch = i % c, ix = (i / c) % w, iy = (i / (c * w)) % h, img = i / (c * w * h);
        float sum = 0.0f;
        for (i64 ky = 0; ky < k; ++ky) {
            i64 oy = iy - ky + pad;
            if (oy < 0 || oy >= h) continue;
            for (i64 kx = 0; kx < k; ++kx) {
                i64 ox = ix - kx + pad;
                if (ox < 0 || ox >= w) continue;
                sum += cols[((img * h + oy) * w + ox) * patch + (ky * k + kx) * c + ch];
            }
        }
        dx[i] = sum;
    }
}

// y[cols × rows] = x[rows × cols]ᵀ: a Keras HWIO kernel ([k·k·C × F]) to cuDNN's KRSC
// ([F × k·k·C]) and its gradient back (no CPU mirror: the CPU convolves HWIO as it is).
extern "C" __global__ void transpose(const float* x, float* y, i64 rows, i64 cols) {
    GRID_STRIDE(i, rows * cols) { y[(i % cols) * rows + i / cols] = x[i]; }
}

// ==== Affine layers and column reductions (layers/affine.rs, cuda/layers/affine.rs, cuda/reduce.rs) ====

// layers::affine::affine_forward's bias rows (the product is then added by cuBLAS).
extern "C" __global__ void fill_rows(float* y, const float* bias, i64 rows, i64 cols) {
    GRID_STRIDE(i, rows * cols) { y[i] = bias[i % cols]; }
}

// Column reductions (cpu::reduce): blocks of 32 columns × 8 row lanes read whole rows of a
// 32-column tile at once (coalesced), each block sums one chunk of rows in double, and a
// finishing kernel adds the chunks per column in a fixed order: deterministic, no atomics.
#define TILE 32
#define LANES 8
#define SUM_X 0            // Σ x
#define SUM_CENTRED_SQ 1   // Σ (x − mean64)²
#define SUM_DY_DY_XHAT 2   // Σ dy, and Σ dy·x̂ with x̂ = (x − mean)·inv_std

// partials[chunk][0..cols) and [chunk][cols..2·cols) (the second quantity of SUM_DY_DY_XHAT).
extern "C" __global__ void column_partials(const float* x, const float* dy, const double* mean64, const float* mean,
                                           const float* inv_std, i64 rows, i64 cols, i64 rows_per_chunk, i64 what,
                                           double* partials) {
    __shared__ double first[LANES][TILE], second[LANES][TILE];
    i64 col = blockIdx.y * TILE + threadIdx.x;
    i64 start = blockIdx.x * rows_per_chunk;
    i64 end = min(rows, start + rows_per_chunk);
    double a = 0.0, b = 0.0;
    if (col < cols) {
        for (i64 r = start + threadIdx.y; r < end; r += LANES) {
            float v = x[r * cols + col];
            if (what == SUM_X) {
                a += (double)v;
            } else if (what == SUM_CENTRED_SQ) {
                double d = (double)v - mean64[col];
                a += d * d;
            } else {
                float xhat = (v - mean[col]) * inv_std[col];
                float g = dy[r * cols + col];
                a += (double)g;
                b += (double)(g * xhat);
            }
        }
    }
    first[threadIdx.y][threadIdx.x] = a;
    second[threadIdx.y][threadIdx.x] = b;
    __syncthreads();
    if (threadIdx.y == 0 && col < cols) {
        double ta = 0.0, tb = 0.0;
        for (int lane = 0; lane < LANES; ++lane) {
            ta += first[lane][threadIdx.x];
            tb += second[lane][threadIdx.x];
        }
        partials[blockIdx.x * 2 * cols + col] = ta;
        partials[blockIdx.x * 2 * cols + cols + col] = tb;
    }
}

__device__ double chunk_total(const double* partials, i64 chunks, i64 cols, i64 col) {
    double total = 0.0;
    for (i64 k = 0; k < chunks; ++k) total += partials[k * 2 * cols + col];
    return total;
}

// Bias gradients: Σ_rows dy (layers::affine::weight_grads).
extern "C" __global__ void bias_grad_finish(const double* partials, i64 chunks, i64 cols, float* out) {
    GRID_STRIDE(col, cols) { out[col] = (float)chunk_total(partials, chunks, cols, col); }
}

// ==== BatchNorm (layers/batchnorm.rs, cuda/layers/batchnorm.rs) ====

// layers::batchnorm forward, training, first pass: the batch mean.
extern "C" __global__ void bn_mean_finish(const double* partials, i64 chunks, i64 c, i64 rows, double* mean64) {
    GRID_STRIDE(ch, c) { mean64[ch] = chunk_total(partials, chunks, c, ch) / (double)rows; }
}

// Second pass: the (biased) batch variance, 1/std, and the moving averages, which take the
// unbiased variance as Keras and PyTorch do.
extern "C" __global__ void bn_var_finish(const double* partials, i64 chunks, i64 c, i64 rows, const double* mean64,
                                         float* mean, float* inv_std, float* moving_mean, float* moving_var,
                                         double momentum, double eps) {
    GRID_STRIDE(ch, c) {
        double m = mean64[ch];
        double var = chunk_total(partials, chunks, c, ch) / (double)rows;
        mean[ch] = (float)m;
        inv_std[ch] = (float)(1.0 / sqrt(var + eps));
        double unbiased = rows > 1 ? var * (double)rows / (double)(rows - 1) : var;
        moving_mean[ch] = (float)((double)moving_mean[ch] * momentum + m * (1.0 - momentum));
        moving_var[ch] = (float)((double)moving_var[ch] * momentum + unbiased * (1.0 - momentum));
    }
}

// layers::batchnorm forward, evaluation: the moving statistics.
extern "C" __global__ void bn_eval_stats(const float* moving_mean, const float* moving_var, i64 c, double eps,
                                         float* mean, float* inv_std) {
    GRID_STRIDE(ch, c) {
        mean[ch] = moving_mean[ch];
        inv_std[ch] = (float)(1.0 / sqrt((double)moving_var[ch] + eps));
    }
}

extern "C" __global__ void bn_apply(const float* x, float* y, const float* mean, const float* inv_std,
                                    const float* gamma, const float* beta, i64 rows, i64 c) {
    GRID_STRIDE(i, rows * c) {
        i64 j = i % c;
        y[i] = gamma[j] * (x[i] - mean[j]) * inv_std[j] + beta[j];
    }
}

// layers::batchnorm backward: gamma's and beta's gradients, and the means the input gradient
// subtracts (zero in evaluation mode, whose statistics do not depend on the input).
extern "C" __global__ void bn_backward_finish(const double* partials, i64 chunks, i64 c, i64 rows, i64 training,
                                              float* gamma_grad, float* beta_grad, float* mean_dy,
                                              float* mean_dy_xhat) {
    GRID_STRIDE(ch, c) {
        double sum_dy = chunk_total(partials, chunks, c, ch);
        double sum_dy_xhat = 0.0;
        for (i64 k = 0; k < chunks; ++k) sum_dy_xhat += partials[k * 2 * c + c + ch];
        beta_grad[ch] = (float)sum_dy;
        gamma_grad[ch] = (float)sum_dy_xhat;
        mean_dy[ch] = training ? (float)(sum_dy / (double)rows) : 0.0f;
        mean_dy_xhat[ch] = training ? (float)(sum_dy_xhat / (double)rows) : 0.0f;
    }
}

extern "C" __global__ void bn_backward_dx(const float* x, const float* dy, const float* mean, const float* inv_std,
                                          const float* gamma, const float* mean_dy, const float* mean_dy_xhat,
                                          i64 rows, i64 c, float* dx) {
    GRID_STRIDE(i, rows * c) {
        i64 j = i % c;
        float xhat = (x[i] - mean[j]) * inv_std[j];
        dx[i] = gamma[j] * inv_std[j] * (dy[i] - mean_dy[j] - xhat * mean_dy_xhat[j]);
    }
}

// ==== Elementwise layers (layers/elementwise.rs, cuda/layers/elementwise.rs) ====

extern "C" __global__ void relu_forward(const float* x, float* y, i64 len) {
    GRID_STRIDE(i, len) { y[i] = fmaxf(x[i], 0.0f); }
}

extern "C" __global__ void relu_backward(const float* y, const float* dy, float* dx, i64 len) {
    GRID_STRIDE(i, len) { dx[i] = y[i] > 0.0f ? dy[i] : 0.0f; }
}

extern "C" __global__ void copy(const float* x, float* y, i64 len) {
    GRID_STRIDE(i, len) { y[i] = x[i]; }
}

// Forward (training) and backward alike: out = in · (kept ? 1/(1 − rate) : 0), the mask drawn
// from (seed, training step, layer), so backward redraws the forward's mask.
extern "C" __global__ void dropout_apply(const float* input, float* output, i64 len, double rate, u64 seed,
                                         i64 layer, const u64* state) {
    u64 key = mix64(seed + mix64(state[STATE_TRAIN_STEPS] * 256ULL + (u64)layer));
    float r = (float)rate;
    float scale = 1.0f / (1.0f - r);
    GRID_STRIDE(i, len) {
        u64 bits = mix64(key + ((u64)i + 1ULL) * 0x9E3779B97F4A7C15ULL);
        output[i] = (float)(bits >> 40) * (1.0f / 16777216.0f) >= r ? input[i] * scale : 0.0f;
    }
}

// ==== MaxPool (layers/pool.rs, cuda/layers/pool.rs) ====

// layers::pool::MaxPool, 2×2 stride 2 over NHWC; `winners` holds dy·2 + dx of each maximum.
extern "C" __global__ void maxpool_forward(const float* x, float* y, u8* winners, i64 n, i64 h, i64 w, i64 c) {
    i64 oh = h / 2, ow = w / 2;
    GRID_STRIDE(i, n * oh * ow * c) {
        i64 ch = i % c, ox = (i / c) % ow, oy = (i / (c * ow)) % oh, img = i / (c * ow * oh);
        float best = 0.0f;
        u8 arg = 0;
        for (int t = 0; t < 4; ++t) {
            i64 iy = 2 * oy + t / 2, ix = 2 * ox + t % 2;
            float v = x[((img * h + iy) * w + ix) * c + ch];
            if (t == 0 || v > best) {
                best = v;
                arg = (u8)t;
            }
        }
        y[i] = best;
        winners[i] = arg;
    }
}

// One thread per input value: its gradient is dy where it won its window, else 0.
extern "C" __global__ void maxpool_backward(const float* dy, const u8* winners, float* dx, i64 n, i64 h, i64 w,
                                            i64 c) {
    i64 oh = h / 2, ow = w / 2;
    GRID_STRIDE(i, n * h * w * c) {
        i64 ch = i % c, ix = (i / c) % w, iy = (i / (c * w)) % h, img = i / (c * w * h);
        i64 oy = iy / 2, ox = ix / 2;
        float g = 0.0f;
        if (oy < oh && ox < ow) {
            i64 o = ((img * oh + oy) * ow + ox) * c + ch;
            if (winners[o] == (u8)((iy % 2) * 2 + ix % 2)) g = dy[o];
        }
        dx[i] = g;
    }
}

// ==== Softmax and the loss (layers/softmax.rs, cuda/layers/softmax.rs) ====

// layers::softmax: probabilities, the fused cross-entropy's gradient (when `grad` is not null),
// the predicted class of each sample at the cursor (when `predictions` is not null), and the
// batch's loss sum, correct count and sample count added to `metrics`. One block.
extern "C" __global__ void softmax_cross_entropy(const float* logits, const int* labels, i64 n, i64 classes,
                                                 float* probs, float* grad, int* predictions, const u64* state,
                                                 double* metrics) {
    __shared__ double shared[256];
    double loss = 0.0, correct = 0.0;
    for (i64 s = threadIdx.x; s < n; s += blockDim.x) {
        const float* z = logits + s * classes;
        i64 argmax = 0;
        float max = z[0];
        for (i64 j = 1; j < classes; ++j)
            if (z[j] > max) {
                max = z[j];
                argmax = j;
            }
        double sum_exp = 0.0;
        for (i64 j = 0; j < classes; ++j) sum_exp += exp((double)(z[j] - max));
        double log_sum_exp = (double)max + log(sum_exp);
        i64 label = labels[s];
        loss += log_sum_exp - (double)z[label];
        correct += argmax == label ? 1.0 : 0.0;
        for (i64 j = 0; j < classes; ++j) {
            double p = exp((double)z[j] - log_sum_exp);
            probs[s * classes + j] = (float)p;
            if (grad) grad[s * classes + j] = (float)((p - (j == label ? 1.0 : 0.0)) / (double)n);
        }
        if (predictions) predictions[state[STATE_CURSOR] + s] = (int)argmax;
    }
    double total_loss = block_sum(loss, shared);
    double total_correct = block_sum(correct, shared);
    if (threadIdx.x == 0) {
        metrics[0] += total_loss;
        metrics[1] += total_correct;
        metrics[2] += (double)n;
    }
}

// ==== SGD (engine/sgd.rs) ====

// engine::sgd::Sgd::step, with the update count read on the device.
extern "C" __global__ void sgd_step(float* w, const float* g, float* v, i64 len, double lr, double decay,
                                    u64 anneal_updates, double momentum, i64 nesterov, double weight_decay,
                                    const u64* state) {
    double t = (double)state[STATE_ITERATIONS];
    double anneal = anneal_updates == 0 ? 1.0 : fmax(0.0, 1.0 - t / (double)anneal_updates);
    float lr_t = (float)(lr / (1.0 + decay * t) * anneal);
    float m = (float)momentum;
    float wd = (float)weight_decay;
    GRID_STRIDE(i, len) {
        float gi = g[i] + wd * w[i];
        float vi = m * v[i] - lr_t * gi;
        v[i] = vi;
        w[i] += nesterov ? m * vi - lr_t * gi : vi;
    }
}
