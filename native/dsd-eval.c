// dsd-eval: the verifier's evaluation step as one native call over libllama.
//
// Why a C file and not bindings in JS: llama.cpp's parameter structs (llama_model_params,
// llama_context_params, llama_batch) change from commit to commit. Compiled against the headers of
// the very libllama it links to, this file lets the compiler check every layout, so the JS side
// (src/verifier/engine/native/) passes only scalars and flat arrays through koffi.
//
// One dsd_eval() call trims each sequence's rejected tail from the KV, decodes every sequence's
// pending tokens in one batch (chunked by n_batch), and picks the target's token at every scored
// position (argmax at T = 0, the request's sampling chain with a seed per position above it), with
// raw log-probabilities and the top-N alternatives when asked: no JS<->native round trip per position.
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml-backend.h"
#include "llama.h"

#define DSD_EVAL_ABI 1
#define DSD_DEFAULT_CTX_SEQ 8192

#ifndef DSD_LLAMA_COMMIT
#define DSD_LLAMA_COMMIT "unknown"
#endif

typedef struct dsd_pending {
  int32_t batch_index;
  int32_t output;
  int32_t job;
  int32_t position;
} dsd_pending;

typedef struct dsd_sampling {
  float temp;
  int32_t top_k;
  float top_p;
  float min_p;
} dsd_sampling;

typedef struct dsd_engine {
  struct llama_model *model;
  struct llama_context *ctx;
  const struct llama_vocab *vocab;
  struct llama_batch batch;
  int32_t n_batch;
  int32_t n_vocab;
  llama_token_data *cand;
  dsd_pending *pending;
  char error[512];
  char device[256];
} dsd_engine;

/** The shim's own interface version; the JS side refuses a shim that differs. */
int32_t dsd_eval_abi(void) { return DSD_EVAL_ABI; }

/** The llama.cpp commit whose headers this shim was compiled against. */
const char *dsd_eval_llama_commit(void) { return DSD_LLAMA_COMMIT; }

void dsd_close(dsd_engine *e);

static int g_backend_ready = 0;

static void quiet_log(enum ggml_log_level level, const char *text, void *user) {
  (void)user;
  if (level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

/**
 * Loads the backends once: `backend_dir` non-empty loads dynamic backends (node-llama-cpp's
 * prebuilt CPU variants, CUDA, Vulkan) from that folder. Returns the number of devices.
 */
int32_t dsd_backend_init(const char *backend_dir, int32_t verbose) {
  if (!g_backend_ready) {
    if (!verbose) llama_log_set(quiet_log, NULL);
    if (backend_dir != NULL && backend_dir[0] != '\0') ggml_backend_load_all_from_path(backend_dir);
    llama_backend_init();
    g_backend_ready = 1;
  }
  return (int32_t)ggml_backend_dev_count();
}

/** How many GPU (or integrated GPU) devices the loaded backends offer. */
int32_t dsd_gpu_devices(void) {
  int32_t n = 0;
  for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
    enum ggml_backend_dev_type t = ggml_backend_dev_type(ggml_backend_dev_get(i));
    if (t == GGML_BACKEND_DEVICE_TYPE_GPU || t == GGML_BACKEND_DEVICE_TYPE_IGPU) n++;
  }
  return n;
}

static void describe_devices(dsd_engine *e, int32_t n_gpu_layers) {
  e->device[0] = '\0';
  size_t used = 0;
  for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
    ggml_backend_dev_t d = ggml_backend_dev_get(i);
    enum ggml_backend_dev_type t = ggml_backend_dev_type(d);
    int gpu = t == GGML_BACKEND_DEVICE_TYPE_GPU || t == GGML_BACKEND_DEVICE_TYPE_IGPU;
    if (gpu && n_gpu_layers == 0) continue;
    if (!gpu && t != GGML_BACKEND_DEVICE_TYPE_CPU) continue;
    int w = snprintf(e->device + used, sizeof e->device - used, "%s%s (%s)", used ? ", " : "",
                     ggml_backend_dev_name(d), ggml_backend_dev_description(d));
    if (w < 0 || (size_t)w >= sizeof e->device - used) break;
    used += (size_t)w;
  }
}

/**
 * Loads a model and makes one context of `n_seq` sequences of `n_ctx_seq` tokens each. On failure
 * returns NULL and writes why into `err`.
 */
dsd_engine *dsd_open(const char *path, int32_t n_ctx_seq, int32_t n_seq, int32_t n_threads,
                     int32_t n_gpu_layers, char *err, int32_t err_len) {
  dsd_engine *e = calloc(1, sizeof *e);
  if (e == NULL) {
    snprintf(err, (size_t)err_len, "out of memory");
    return NULL;
  }
  struct llama_model_params mp = llama_model_default_params();
  mp.n_gpu_layers = n_gpu_layers;
  e->model = llama_model_load_from_file(path, mp);
  if (e->model == NULL) {
    snprintf(err, (size_t)err_len, "llama.cpp could not load the model %s", path);
    free(e);
    return NULL;
  }
  e->vocab = llama_model_get_vocab(e->model);
  e->n_vocab = llama_vocab_n_tokens(e->vocab);
  // Unset: the trained context, at most DSD_DEFAULT_CTX_SEQ per sequence. A 128k-context model times
  // 8 sequences would otherwise ask for a million KV cells before the first request.
  if (n_ctx_seq <= 0) {
    n_ctx_seq = llama_model_n_ctx_train(e->model);
    if (n_ctx_seq > DSD_DEFAULT_CTX_SEQ) n_ctx_seq = DSD_DEFAULT_CTX_SEQ;
  }
  struct llama_context_params cp = llama_context_default_params();
  cp.n_ctx = (uint32_t)n_ctx_seq * (uint32_t)n_seq;
  cp.n_seq_max = (uint32_t)n_seq;
  cp.n_batch = cp.n_ctx < 2048 ? cp.n_ctx : 2048;
  cp.n_ubatch = cp.n_batch < 512 ? cp.n_batch : 512;
  cp.n_threads = n_threads;
  cp.n_threads_batch = n_threads;
  // Each sequence attends over its own cells only, so its tokens do not depend on what the others
  // hold. One unified buffer made 16 streams through dsd 0.97x the verifier alone instead of
  // 0.78x (llama.cpp splits a batch of per-sequence streams into equal ubatches, so one
  // generation's drafts cost the whole batch a second pass over the weights), but with it the
  // verifier's own greedy text of a prompt differed between two passes in one of four full test
  // runs (test/lossy-link.test.ts): a sequence's attention then spans the others' cells too.
  cp.kv_unified = false;
  cp.no_perf = true;
  e->ctx = llama_init_from_model(e->model, cp);
  if (e->ctx == NULL) {
    snprintf(err, (size_t)err_len, "llama.cpp could not create a context of %d x %d tokens", n_seq, n_ctx_seq);
    llama_model_free(e->model);
    free(e);
    return NULL;
  }
  e->n_batch = (int32_t)llama_n_batch(e->ctx);
  e->batch = llama_batch_init(e->n_batch, 0, 1);
  e->cand = malloc(sizeof(llama_token_data) * (size_t)e->n_vocab);
  e->pending = malloc(sizeof(dsd_pending) * (size_t)e->n_batch);
  if (e->cand == NULL || e->pending == NULL) {
    snprintf(err, (size_t)err_len, "out of memory");
    dsd_close(e);
    return NULL;
  }
  describe_devices(e, n_gpu_layers);
  return e;
}

void dsd_close(dsd_engine *e) {
  if (e == NULL) return;
  llama_batch_free(e->batch);
  llama_free(e->ctx);
  llama_model_free(e->model);
  free(e->cand);
  free(e->pending);
  free(e);
}

const char *dsd_last_error(const dsd_engine *e) { return e->error; }
const char *dsd_device(const dsd_engine *e) { return e->device; }
int32_t dsd_n_vocab(const dsd_engine *e) { return e->n_vocab; }
int32_t dsd_n_ctx_seq(const dsd_engine *e) { return (int32_t)llama_n_ctx_seq(e->ctx); }
int32_t dsd_n_ctx_train(const dsd_engine *e) { return llama_model_n_ctx_train(e->model); }
int32_t dsd_bos(const dsd_engine *e) { return llama_vocab_bos(e->vocab); }
int32_t dsd_eos(const dsd_engine *e) { return llama_vocab_eos(e->vocab); }
int32_t dsd_is_eog(const dsd_engine *e, int32_t token) { return llama_vocab_is_eog(e->vocab, token); }
int32_t dsd_add_bos(const dsd_engine *e) { return llama_vocab_get_add_bos(e->vocab); }

/** Tokenizes `len` bytes; a negative result is minus the room needed. */
int32_t dsd_tokenize(const dsd_engine *e, const char *text, int32_t len, int32_t add_special, int32_t *out,
                     int32_t max) {
  return llama_tokenize(e->vocab, text, len, out, max, add_special != 0, true);
}

/** The bytes of `token` as it reads inside a text; negative: minus the room needed. */
int32_t dsd_piece(const dsd_engine *e, int32_t token, char *buf, int32_t len) {
  return llama_token_to_piece(e->vocab, token, buf, len, 0, false);
}

/** Detokenizes; negative: minus the room needed. */
int32_t dsd_detokenize(const dsd_engine *e, const int32_t *tokens, int32_t n, char *buf, int32_t len) {
  return llama_detokenize(e->vocab, tokens, n, buf, len, false, false);
}

/** Raw log-softmax of one row: fills the chosen token's log-probability and the top `top_n`. */
static void logprobs(dsd_engine *e, const float *logits, int32_t chosen, int32_t top_n, float *own,
                     int32_t *top_ids, float *top_lp) {
  float max = -FLT_MAX;
  for (int32_t v = 0; v < e->n_vocab; v++)
    if (logits[v] > max) max = logits[v];
  double sum = 0;
  for (int32_t v = 0; v < e->n_vocab; v++) sum += exp((double)(logits[v] - max));
  const float log_z = max + (float)log(sum);
  *own = logits[chosen] - log_z;
  for (int32_t j = 0; j < top_n; j++) {
    top_ids[j] = -1;
    top_lp[j] = -INFINITY;
  }
  // Insertion into a small sorted list: top_n is at most 20 (OpenAI's cap).
  for (int32_t v = 0; v < e->n_vocab && top_n > 0; v++) {
    float lp = logits[v] - log_z;
    if (lp <= top_lp[top_n - 1]) continue;
    int32_t j = top_n - 1;
    while (j > 0 && top_lp[j - 1] < lp) {
      top_lp[j] = top_lp[j - 1];
      top_ids[j] = top_ids[j - 1];
      j--;
    }
    top_lp[j] = lp;
    top_ids[j] = v;
  }
}

static int32_t argmax(const dsd_engine *e, const float *logits) {
  int32_t best = 0;
  for (int32_t v = 1; v < e->n_vocab; v++)
    if (logits[v] > logits[best]) best = v;
  return best;
}

/** The request's chain (top-k, top-p, min-p, temperature) and a draw of its own seed. */
static int32_t sample(dsd_engine *e, const float *logits, const dsd_sampling *s, uint32_t seed) {
  for (int32_t v = 0; v < e->n_vocab; v++) e->cand[v] = (llama_token_data){v, logits[v], 0.0f};
  llama_token_data_array cur = {e->cand, (size_t)e->n_vocab, -1, false};
  struct llama_sampler *chain = llama_sampler_chain_init(llama_sampler_chain_default_params());
  if (s->top_k > 0) llama_sampler_chain_add(chain, llama_sampler_init_top_k(s->top_k));
  if (s->top_p < 1.0f) llama_sampler_chain_add(chain, llama_sampler_init_top_p(s->top_p, 1));
  if (s->min_p > 0.0f) llama_sampler_chain_add(chain, llama_sampler_init_min_p(s->min_p, 1));
  llama_sampler_chain_add(chain, llama_sampler_init_temp(s->temp));
  llama_sampler_chain_add(chain, llama_sampler_init_dist(seed));
  llama_sampler_apply(chain, &cur);
  llama_sampler_free(chain);
  return cur.selected >= 0 ? cur.data[cur.selected].id : argmax(e, logits);
}

/** Picks the token at one scored position and fills what the caller asked about it. */
static void score_row(dsd_engine *e, const float *row, const dsd_sampling *s, uint32_t seed, int32_t want_lp,
                      int32_t top_n, int32_t o, int32_t *out_ids, float *out_lp, int32_t *top_ids, float *top_lp) {
  int32_t id = s->temp <= 0.0f ? argmax(e, row) : sample(e, row, s, seed);
  out_ids[o] = id;
  if (want_lp) logprobs(e, row, id, top_n, &out_lp[o], &top_ids[o * top_n], &top_lp[o * top_n]);
}

/**
 * One evaluation of `n_jobs` sequences' rounds. Job j: sequence `seq[j]`, KV kept up to
 * `keep[j]` (the rest erased), `n_tok[j]` tokens from `tokens` appended at positions keep[j]...,
 * the target's token after each of its last `n_out[j]` tokens; sampling `temp/top_k/top_p/min_p`
 * and `seed[j]` + position for draws. Outputs in job order: `out_ids`, and when `want_lp`,
 * `out_lp` plus `top_n` alternatives each in `top_ids`/`top_lp`. Returns 0, or -1 with
 * dsd_last_error() set (the KV of the jobs is then unspecified; the caller forgets them).
 */
int32_t dsd_eval(dsd_engine *e, int32_t n_jobs, const int32_t *seq, const int32_t *keep, const int32_t *n_tok,
                 const int32_t *n_out, const float *temp, const int32_t *top_k, const float *top_p,
                 const float *min_p, const uint32_t *seed, const int32_t *tokens, int32_t want_lp, int32_t top_n,
                 int32_t *out_ids, float *out_lp, int32_t *top_ids, float *top_lp) {
  e->error[0] = '\0';
  llama_memory_t mem = llama_get_memory(e->ctx);
  for (int32_t j = 0; j < n_jobs; j++) {
    if (!llama_memory_seq_rm(mem, seq[j], keep[j], -1)) {
      snprintf(e->error, sizeof e->error, "could not trim sequence %d at %d", seq[j], keep[j]);
      return -1;
    }
  }
  // All jobs' tokens in order, in batches of at most n_batch; each scored row is read right after
  // the decode of the batch that holds it.
  int32_t job = 0, in_job = 0, offset = 0, out_base = 0;
  while (job < n_jobs) {
    e->batch.n_tokens = 0;
    int32_t n_pending = 0;
    while (job < n_jobs && e->batch.n_tokens < e->n_batch) {
      if (in_job >= n_tok[job]) {
        out_base += n_out[job];
        offset += n_tok[job];
        job++;
        in_job = 0;
        continue;
      }
      int32_t i = e->batch.n_tokens++;
      int32_t first_out = n_tok[job] - n_out[job];
      e->batch.token[i] = tokens[offset + in_job];
      e->batch.pos[i] = keep[job] + in_job;
      e->batch.n_seq_id[i] = 1;
      e->batch.seq_id[i][0] = seq[job];
      e->batch.logits[i] = in_job >= first_out;
      if (in_job >= first_out) {
        e->pending[n_pending++] = (dsd_pending){i, out_base + in_job - first_out, job, in_job - first_out};
      }
      in_job++;
    }
    if (e->batch.n_tokens == 0) break;
    int32_t rc = llama_decode(e->ctx, e->batch);
    if (rc != 0) {
      snprintf(e->error, sizeof e->error, "llama_decode failed (%d)", rc);
      return -1;
    }
    for (int32_t p = 0; p < n_pending; p++) {
      const dsd_pending *q = &e->pending[p];
      const float *row = llama_get_logits_ith(e->ctx, q->batch_index);
      if (row == NULL) {
        snprintf(e->error, sizeof e->error, "no logits at batch index %d", q->batch_index);
        return -1;
      }
      dsd_sampling s = {temp[q->job], top_k[q->job], top_p[q->job], min_p[q->job]};
      score_row(e, row, &s, seed[q->job] + (uint32_t)q->position, want_lp, top_n, q->output, out_ids, out_lp,
                top_ids, top_lp);
    }
  }
  return 0;
}
