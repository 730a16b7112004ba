// DecoderModel: the forward pass described in decoder.h, over GGUF's standard tensor names.
//
// Tensor parallelism (T > 1 ranks per stage, Megatron-style; see shard.h): each rank holds
// its GQA groups of heads (about n_head / T query heads and the KV heads they read, or one
// KV head shared with other ranks when n_head_kv < T) and only their KV cache, and about
// n_ff / T feed-forward rows (whole blocks of Wdown). Wq, Wk, Wv, Wgate, Wup are split by
// output rows, Wo and Wdown by input columns; each rank's Wo and Wdown give a partial sum of the
// block output, and one all-reduce after attention and one after the FFN make it whole on every
// rank. With ModelOptions::tp_exact, Wo and Wdown are split by output rows instead: each rank
// gathers the whole input (all heads, all FFN rows), computes its n_embd / T outputs with
// the full dot products one process computes, and the outputs are gathered: no sum is
// split, so the logits are one process's bit for bit. Embeddings and norms are replicated:
// each rank computes the same residual stream. The output head is split by vocabulary rows
// (about n_vocab / T contiguous rows per rank, of the embedding matrix when it is tied, read
// in place unless converted or repacked, which takes a copy): each rank computes the
// logits of its rows, one process's dot products, and an all-gather puts the whole logits
// [n_out, n_vocab] on every rank. The embedding is only looked up, from the source as it
// is: a rank's resident memory holds the pages of the rows it has read, not the matrix.
//
// Pipeline parallelism (P > 1 stages, ModelOptions::pipeline_parallel_size): stage s holds
// a contiguous range of layers (the embeddings on stage 0, the output norm and head on
// stage P - 1) and the KV cache of those layers only. A batch is cut into micro-batches of
// consecutive rows; stage s receives micro-batch m's residual stream [rows, n_embd] from
// stage s - 1 (TP rank t from TP rank t), runs its layers on it and sends it on to s + 1,
// then goes on to micro-batch m + 1. The overlap comes from that order: while stage s + 1
// runs its layers on m, stage s is already running its own on m + 1, so with M
// micro-batches the P stages are all busy except for the fill and drain of P - 1
// micro-batches (a send blocks at most until the next stage has finished the micro-batch
// before). The rows of a sequence come in position order within the batch, so a
// micro-batch's queries find the keys of the earlier micro-batches already in the stage's
// cache: attention is causal as in one pass. The last stage broadcasts the logits to the
// other stages, so every rank returns them.
#include "models/decoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "core/error.h"
#include "core/progress.h"
#include "dist/communicator.h"
#include "loader/gguf.h"
#include "loader/hf_source.h"
#include "models/shard.h"
#include "models/weight_quant.h"
#include "models/weights.h"
#include "quant/quant.h"

namespace tessera {

namespace {

struct DecoderLayer {
  const float* attn_norm = nullptr;  // [n_embd]
  Tensor wq, wk, wv, wo;             // [n_embd -> q_dim], [n_embd -> kv_dim] x2, [q_dim -> n_embd]
  Tensor bq, bk, bv, bo;             // optional biases
  const float* q_norm = nullptr;     // [head_dim] (qk_norm)
  const float* k_norm = nullptr;     // [head_dim] (qk_norm)
  const float* attn_post_norm = nullptr;  // [n_embd] (post_norms)
  const float* ffn_norm = nullptr;        // [n_embd]
  Tensor w_gate, w_up, w_down;            // [n_embd -> n_ff] x2, [n_ff -> n_embd]
  const float* ffn_post_norm = nullptr;   // [n_embd] (post_norms)
  // Experts: 3-D [n_expert, rows, cols]; the router [n_embd -> n_expert].
  Tensor router, gate_exps, up_exps, down_exps;
  Tensor shexp_gate_inp, shexp_gate, shexp_up, shexp_down;  // shared expert (Qwen2-MoE)
  bool swa = false;                                         // sliding-window layer
  RopeParams rope;
};

// Rows [r0, r0 + n_rows) of a 2-D weight as a weight of its own (fused QKV / gate+up).
// A repacked weight splits only at whole groups (tensor() leaves others plain).
Tensor row_slice(const Tensor& t, int64_t r0, int64_t n_rows) {
  if (is_repacked(t.type) && (r0 % kRepackRows != 0 || n_rows % kRepackRows != 0))
    throw Error("internal: slicing a row-interleaved weight inside a group");
  Tensor s = t;
  s.ne[1] = n_rows;
  s.data = t.row(r0);
  return s;
}

// Expert e of a 3-D expert tensor [n_expert, rows, cols] as a 2-D weight [rows, cols].
Tensor expert(const Tensor& t, int e) {
  Tensor s = t;
  s.ne[2] = 1;
  s.data = t.row(int64_t{e} * t.ne[1]);
  return s;
}

// A TP rank's share of the attention heads and the FFN: the whole model without tensor
// parallelism.
struct LocalDims {
  Span q_heads, kv_heads;  // of the model's n_head / n_head_kv (head_span)
  Span ff;                 // of the model's n_ff rows (dense FFN)
  Span ff_exp, ff_shexp;   // of every expert's n_ff_exp rows, of the shared expert's
  Span embd;               // of Wo's and Wdown's n_embd output rows (tp_exact), else all
  int n_head = 0, n_head_kv = 0, n_ff = 0;
  int q_dim = 0;   // n_head * head_dim
  int kv_dim = 0;  // n_head_kv * head_dim
};

class DecoderModel final : public Model {
 public:
  DecoderModel(std::unique_ptr<gguf::Source> file, const std::string& arch,
               const ModelOptions& opts, const DecoderFeatures& f);
  ~DecoderModel() override { release_buffers(); }
  void forward(const ForwardBatch& batch, KVCache& kv, float* logits) override;
  void forward_hidden(const ForwardBatch& batch, KVCache& kv, float* hidden) override;

 private:
  // Message tag of the activations passed between pipeline stages.
  static constexpr int kActivationTag = 1;
  // Rows of a micro-batch are at least this many (fewer rows make slow matmuls); a batch is
  // cut into at most 2 P micro-batches.
  static constexpr int kMinMicroRows = 16;
  // The logits are gathered in chunks of about this many floats per rank (16 MiB).
  static constexpr int64_t kHeadGatherFloats = int64_t{1} << 22;
  // `repack`: whether a matrix may take the row-interleaved layout (false for one that is
  // sliced at rows that are not a multiple of kRepackRows). `plan`: how the matrix splits
  // under tensor parallelism (null: replicated). `in_place`: a plan of one range of whole
  // rows that needs no rewriting (no conversion, no repacking) is read where the source has
  // it instead of copied (the rows of a row-major matrix are contiguous), so the rank's
  // resident memory holds only the pages of its rows, once, in the file's page cache.
  Tensor tensor(const std::string& name, std::initializer_list<int64_t> shape, bool required,
                bool repack = true, const ShardPlan* plan = nullptr, bool in_place = false);
  void setup_parallel(const ModelOptions& opts);
  // The TP rank's share for tp_rank of tp_size_ ranks.
  LocalDims local_dims(int tp_rank) const;
  // The output head's vocabulary rows that TP rank tp_rank holds: contiguous, as equal as
  // possible, in whole repack groups when n_vocab is a multiple of kRepackRows.
  Span vocab_span(int tp_rank) const;
  // Elements [offset + s.begin, offset + s.begin + s.count) of the F32 vector b.
  static Tensor f32_piece(const Tensor& b, int64_t offset, Span s);
  // tmp[n, n_embd] = w · in for a row-parallel matrix (Wo, Wdown) whose input
  // in[n, widths[rank]] is this rank's slice (its heads, its FFN rows); see the top of the file.
  void row_parallel(const Tensor& w, const float* in, const std::vector<int>& widths,
                    const Tensor* bias, int n);
  // full[n, sum of widths] = every TP rank's local[n, widths[r]] side by side, in rank order.
  void gather_columns(const float* local, int n, const std::vector<int>& widths, float* full);
  // x_[n_tokens, n_embd] on the last stage = the residual stream after the last layer,
  // every row; the other stages pass theirs on (see the top of the file).
  void run_stages(const ForwardBatch& batch, KVCache& kv);
  // This stage's layers on x[n, n_embd], the rows of ab.
  void run_layers(float* x, KVCache& kv, const AttentionBatch& ab, int n);
  // hidden[n_out, n_embd] on the last stage = the normalized final hidden states of the
  // rows batch.out_rows.
  void final_hidden(const ForwardBatch& batch, KVCache& kv, float* hidden);
  bool last_stage() const { return stage_ == n_stages_ - 1; }
  const float* norm_weight(const std::string& name, int64_t n, bool required = true);
  void load_layer(int l);
  void attention_block(const DecoderLayer& L, const KVLayer& kv, const AttentionBatch& ab, int n);
  void dense_ffn(const DecoderLayer& L, int n);
  void moe_ffn(const DecoderLayer& L, int n);
  void lm_head(int n_out, float* logits);
  void ensure_capacity(int n_tokens);
  void release_buffers();

  DecoderFeatures f_;
  dist::Communicator* comm_ = nullptr;  // the TP ranks of this stage; null: no TP
  dist::Communicator* pipe_ = nullptr;  // this TP rank of every stage, by stage; null: P = 1
  std::unique_ptr<dist::Communicator> tp_group_, pipe_group_;  // split off ModelOptions::comm
  int tp_rank_ = 0, tp_size_ = 1;
  int stage_ = 0, n_stages_ = 1;
  int layer0_ = 0;  // this stage's first layer; layers_[i] is layer layer0_ + i
  bool tp_exact_ = false;
  LocalDims local_;
  // Every TP rank's widths of the row-parallel inputs (q_dim, n_ff) and, with tp_exact,
  // outputs (its n_embd rows), for gather_columns.
  std::vector<int> q_widths_, ff_widths_, embd_widths_;
  std::vector<int> vocab_widths_;                   // every TP rank's rows of the output head
  std::vector<float> gather_scratch_, gather_pad_;  // [T, n, max width] of gather_columns
  Tensor tok_embd_, output_;
  const float* output_norm_ = nullptr;
  std::vector<DecoderLayer> layers_;
  std::vector<std::vector<float>> owned_;                  // weights converted to f32
  std::vector<std::unique_ptr<uint8_t[]>> owned_weights_;  // matrices converted at load time
  std::optional<DType> quant_;                             // ModelOptions::quantization
  int n_threads_ = 0;
  int n_ff_max_ = 0;  // widest FFN hidden size (dense, expert, shared)

  int capacity_ = 0;
  // Activation buffers, [capacity_, width] each.
  float *x_ = nullptr, *h_ = nullptr, *q_ = nullptr, *k_ = nullptr, *v_ = nullptr, *att_ = nullptr,
        *gate_ = nullptr, *up_ = nullptr, *tmp_ = nullptr, *xe_ = nullptr, *ye_ = nullptr,
        *router_ = nullptr, *route_w_ = nullptr;
  // tp_exact: a gathered input [n, max(q_dim, n_ff)], this rank's outputs [n, n_embd / T].
  float *whole_ = nullptr, *part_ = nullptr;
  // MoE routing, host side: experts [n, k], and the batch rows grouped by expert.
  std::vector<int32_t> route_ids_, expert_rows_;
  std::vector<float> expert_w_;
};

Tensor DecoderModel::tensor(const std::string& name, std::initializer_list<int64_t> shape,
                            bool required, bool repack, const ShardPlan* plan, bool in_place) {
  Tensor t = find_weight(*file_, name, shape, required);
  if (!t) return {};
  const gguf::TensorInfo* ti = file_->find_tensor(name);
  // A tensor-parallel rank copies out its shard (before any conversion: a column split
  // falls on the file's blocks) and lets the source drop the rest.
  const size_t n_owned = owned_weights_.size();
  bool sharded = plan != nullptr && tp_size_ > 1;
  if (sharded && in_place && plan->rows.size() == 1 && plan->cols.count == 0 &&
      !(quant_ && shape.size() >= 2) && t.ne[2] == 1) {
    const Span r = plan->rows[0];
    Tensor rows = t;
    rows.data = t.row(r.begin);
    rows.ne[1] = r.count;
    if (!repack || backend_->weight_layout(rows) == rows.type) {
      // Read in place: nothing is copied or rewritten, so the source keeps its pages.
      t = rows;
      sharded = false;
      repack = false;
    }
  }
  if (sharded) {
    // A 3-D expert stack [n_expert, rows, cols] is split as the 2-D matrix of its
    // n_expert * rows rows (the plan names every expert's rows), then shaped back.
    const int64_t n_expert = t.ne[2];
    Tensor flat = t;
    flat.ne[1] *= n_expert;
    flat.ne[2] = 1;
    t = shard_weight(flat, name, *plan, owned_weights_);
    t.ne[1] /= n_expert;
    t.ne[2] = n_expert;
    file_->evict_tensor(name);
  }
  // Matrices (not norms or biases) may be converted at load time.
  if (quant_ && shape.size() >= 2) {
    const Tensor c = convert_weight(t, *quant_, owned_weights_, n_threads_);
    if (sharded && c.data != t.data) owned_weights_.erase(owned_weights_.begin() + n_owned);
    t = c;
  }
  // A matrix the backend keeps in a layout of its own is rewritten in place: the converted
  // copy the model owns, or the source's own bytes when it lets them be rewritten (a GGUF
  // file's private mapping); the source then reports the new type.
  if (repack && shape.size() >= 2) {
    const DType layout = backend_->weight_layout(t);
    if (layout != t.type) {
      uint8_t* data = t.data != ti->data ? const_cast<uint8_t*>(static_cast<const uint8_t*>(t.data))
                                         : file_->rewrite_tensor(name, layout);
      if (data != nullptr) {
        backend_->prepare_weight(t.type, data, t.rows(), t.cols());
        t.type = layout;
      }
    }
  }
  const uint64_t bytes = static_cast<uint64_t>(t.rows()) * t.row_bytes();
  weight_stats_.n_params += static_cast<uint64_t>(t.rows() * t.cols());
  weight_stats_.n_bytes += bytes;
  // What one decode step reads: each matrix once; of the token embedding one row; of
  // 3-D expert tensors only the experts a token is routed to.
  if (shape.size() >= 2) {
    if (name == "token_embd.weight")
      weight_stats_.decode_bytes += t.row_bytes();
    else if (shape.size() == 3 && f_.n_expert > 0)
      weight_stats_.decode_bytes += bytes / f_.n_expert * f_.n_expert_used;
    else
      weight_stats_.decode_bytes += bytes;
  }
  return t;
}

const float* DecoderModel::norm_weight(const std::string& name, int64_t n, bool required) {
  Tensor t = tensor(name, {n}, required);
  if (!t) return nullptr;
  if (t.type == DType::F32) return static_cast<const float*>(t.data);
  if (dtype_info(t.type).block_size != 1 && n % dtype_info(t.type).block_size != 0)
    throw Error("tensor '" + name + "' has an unusable type");
  owned_.emplace_back(n);
  quant::dequantize_row(t.type, t.data, owned_.back().data(), n);
  return owned_.back().data();
}

DecoderModel::DecoderModel(std::unique_ptr<gguf::Source> file, const std::string& arch,
                           const ModelOptions& opts, const DecoderFeatures& f)
    : f_(f) {
  file_ = std::move(file);
  config_ = read_model_config(*file_, arch);
  tokenizer_ = Tokenizer::from_gguf(*file_);
  config_.n_vocab = tokenizer_->n_vocab();
  // Hugging Face checkpoints keep Q/K in the rotate-half order: NeoX RoPE for them.
  config_.rope_neox = f.rope_neox || file_->get_bool(hf::kRopeNeoxKey).value_or(false);
  quant_ = parse_weight_type(opts.quantization);
  n_threads_ = opts.n_threads;
  backend_ = make_backend(opts.backend, {.n_threads = opts.n_threads, .repack = opts.repack});
  setup_parallel(opts);

  const ModelConfig& c = config_;
  if (f_.ffn == FfnKind::MOE && (f_.n_expert < 1 || f_.n_expert_used < 1 ||
                                 f_.n_expert_used > f_.n_expert || f_.n_ff_exp < 1))
    throw Error(
        "mixture-of-experts metadata (expert_count, expert_used_count, expert "
        "feed-forward length) is missing or inconsistent");
  if (!f_.swa_layers.empty() && static_cast<int>(f_.swa_layers.size()) != c.n_layer)
    throw Error("sliding-window pattern does not cover every layer");
  n_ff_max_ = static_cast<int>(
      std::max({int64_t{local_.n_ff}, local_.ff_exp.count, local_.ff_shexp.count}));

  // The embeddings (first stage) are replicated on the TP ranks of their stage; the output
  // head (last stage) is split by vocabulary rows (see the top of the file).
  const int64_t E = c.n_embd, V = c.n_vocab;
  const bool tied = file_->find_tensor("output.weight") == nullptr;
  const bool split_head = last_stage() && tp_size_ > 1;
  if (split_head) {
    // A slice repacks exactly when the whole head would (vocab_span keeps whole groups), so
    // each logit is computed by the kernel one process uses. It is read in place (only its
    // rows' pages are touched, in the file's page cache) unless the backend rewrites it
    // into its matmul layout: then it is copied.
    const ShardPlan vocab_rows = {.rows = {vocab_span(tp_rank_)}};
    const bool repack = V % kRepackRows == 0;
    if (!tied) {
      output_ = tensor("output.weight", {E, V}, true, repack, &vocab_rows, /*in_place=*/true);
    } else {
      // Tied: this rank's rows of the embedding. A copy is made (and the source's pages
      // dropped) before the first stage maps the whole matrix for the token lookup below,
      // which reads it as the file has it. On the first stage, which counts the whole
      // embedding, the slice's parameters are the embedding's, and so are its bytes when
      // read in place; what the head reads per token is the slice.
      const WeightStats before = weight_stats_;
      output_ = tensor("token_embd.weight", {E, V}, true, repack, &vocab_rows, /*in_place=*/true);
      const gguf::TensorInfo* emb = file_->find_tensor("token_embd.weight");
      const auto* p = static_cast<const uint8_t*>(output_.data);
      if (stage_ == 0) {
        weight_stats_.n_params = before.n_params;
        if (p >= emb->data && p < emb->data + emb->n_bytes) weight_stats_.n_bytes = before.n_bytes;
      }
      weight_stats_.decode_bytes =
          before.decode_bytes + static_cast<uint64_t>(output_.rows()) * output_.row_bytes();
    }
    head_rows_local_ = output_.rows();
  }
  // An embedding that is only looked up (not the head of this process: untied, or the head
  // split) is left as the file has it: rewritten into a matmul layout in a mapped file, all
  // of its pages would become private copies; left alone, only the rows read are in memory.
  const bool embd_is_head = tied && last_stage() && !split_head;
  if (stage_ == 0) tok_embd_ = tensor("token_embd.weight", {E, V}, true, embd_is_head);
  if (last_stage()) {
    output_norm_ = norm_weight("output_norm.weight", E);
    if (!split_head) output_ = tensor("output.weight", {E, V}, false);
    if (!output_) {
      // Tied embeddings: the whole matrix is read again as the output.
      if (!tok_embd_) tok_embd_ = tensor("token_embd.weight", {E, V}, true);
      output_ = tok_embd_;
      weight_stats_.decode_bytes += static_cast<uint64_t>(tok_embd_.rows()) * tok_embd_.row_bytes();
    }
  } else {
    head_rows_local_ = 0;
  }
  // Converting or repacking weights (and a Hugging Face file's first reads) take a while
  // on large models.
  const int layer1 = layer0_ + n_layer_local();
  Progress progress("preparing weights", static_cast<uint64_t>(layer1 - layer0_), "layers");
  for (int l = layer0_; l < layer1; ++l) {
    load_layer(l);
    progress.add();
  }
  progress.finish();
}

void DecoderModel::load_layer(int l) {
  const ModelConfig& c = config_;
  const int64_t E = c.n_embd, Q = c.q_dim(), KV = c.kv_dim(), F = c.n_ff, D = c.head_dim;
  // This rank's rows of the column-parallel matrices (all of them in one process).
  const int64_t Ql = local_.q_dim, KVl = local_.kv_dim, Fl = local_.n_ff;
  const Span qs = {local_.q_heads.begin * D, Ql}, kvs = {local_.kv_heads.begin * D, KVl},
             fs = local_.ff;
  // Wo, Wdown: row-parallel, split by input columns (Wo's at head boundaries, Wdown's at
  // this rank's FFN rows), or with tp_exact by output rows.
  const ShardPlan wo_plan = tp_exact_ ? ShardPlan{.rows = {local_.embd}} : ShardPlan{.cols = qs},
                  down_plan = tp_exact_ ? ShardPlan{.rows = {local_.embd}} : ShardPlan{.cols = fs};
  const ShardPlan q_rows = {.rows = {qs}}, kv_rows = {.rows = {kvs}}, ff_rows = {.rows = {fs}},
                  qkv_rows = {.rows = {qs, {Q + kvs.begin, KVl}, {Q + KV + kvs.begin, KVl}}},
                  gate_up_rows = {.rows = {fs, {F + fs.begin, Fl}}};
  const std::string p = "blk." + std::to_string(l) + ".";
  DecoderLayer L;
  L.attn_norm = norm_weight(p + "attn_norm.weight", E);
  const bool qkv_groups = Ql % kRepackRows == 0 && KVl % kRepackRows == 0;
  bool fused_bias = false;
  if (Tensor wqkv = tensor(p + "attn_qkv.weight", {E, Q + 2 * KV}, false, qkv_groups, &qkv_rows)) {
    L.wq = row_slice(wqkv, 0, Ql);  // [q_dim | kv_dim | kv_dim] of this rank's heads
    L.wk = row_slice(wqkv, Ql, KVl);
    L.wv = row_slice(wqkv, Ql + KVl, KVl);
    if (Tensor b = tensor(p + "attn_qkv.bias", {Q + 2 * KV}, false)) {
      if (b.type != DType::F32) throw Error("attention biases must be F32");
      L.bq = f32_piece(b, 0, qs);
      L.bk = f32_piece(b, Q, kvs);
      L.bv = f32_piece(b, Q + KV, kvs);
      fused_bias = true;
    }
  } else {
    L.wq = tensor(p + "attn_q.weight", {E, Q}, true, true, &q_rows);
    L.wk = tensor(p + "attn_k.weight", {E, KV}, true, true, &kv_rows);
    L.wv = tensor(p + "attn_v.weight", {E, KV}, true, true, &kv_rows);
  }
  L.wo = tensor(p + "attn_output.weight", {Q, E}, true, true, &wo_plan);
  if (!L.bq) L.bq = tensor(p + "attn_q.bias", {Q}, false);
  if (!L.bk) L.bk = tensor(p + "attn_k.bias", {KV}, false);
  if (!L.bv) L.bv = tensor(p + "attn_v.bias", {KV}, false);
  L.bo = tensor(p + "attn_output.bias", {E}, false);
  for (const Tensor* b : {&L.bq, &L.bk, &L.bv, &L.bo})
    if (*b && b->type != DType::F32) throw Error("attention biases must be F32");
  if (!fused_bias) {
    if (L.bq) L.bq = f32_piece(L.bq, 0, qs);
    if (L.bk) L.bk = f32_piece(L.bk, 0, kvs);
    if (L.bv) L.bv = f32_piece(L.bv, 0, kvs);
  }
  // The output bias joins the partial sums once: on rank 0, before the all-reduce (with
  // tp_exact each rank adds its rows' piece).
  if (tp_exact_ && L.bo) L.bo = f32_piece(L.bo, 0, local_.embd);
  if (!tp_exact_ && tp_rank_ != 0) L.bo = {};
  if (f_.qk_norm) {
    L.q_norm = norm_weight(p + "attn_q_norm.weight", D);
    L.k_norm = norm_weight(p + "attn_k_norm.weight", D);
  }
  if (f_.post_norms) {
    L.attn_post_norm = norm_weight(p + "post_attention_norm.weight", E);
    L.ffn_post_norm = norm_weight(p + "post_ffw_norm.weight", E);
  }
  L.ffn_norm = norm_weight(p + "ffn_norm.weight", E);
  switch (f_.ffn) {
    case FfnKind::SWIGLU:
    case FfnKind::GEGLU:
      L.w_gate = tensor(p + "ffn_gate.weight", {E, F}, true, true, &ff_rows);
      L.w_up = tensor(p + "ffn_up.weight", {E, F}, true, true, &ff_rows);
      L.w_down = tensor(p + "ffn_down.weight", {F, E}, true, true, &down_plan);
      break;
    case FfnKind::SWIGLU_FUSED: {
      Tensor gu =
          tensor(p + "ffn_up.weight", {E, 2 * F}, true, Fl % kRepackRows == 0, &gate_up_rows);
      L.w_gate = row_slice(gu, 0, Fl);  // [n_ff | n_ff] of this rank's rows
      L.w_up = row_slice(gu, Fl, Fl);
      L.w_down = tensor(p + "ffn_down.weight", {F, E}, true, true, &down_plan);
      break;
    }
    case FfnKind::MOE: {
      // The router (and the shared expert's gate) is replicated: every rank routes alike.
      // Each expert is split as a dense FFN: this rank's rows of every expert's gate and up,
      // its columns of every expert's down; so is the shared expert.
      const int64_t X = f_.n_expert, FE = f_.n_ff_exp, FS = f_.n_ff_shexp;
      const Span es = local_.ff_exp, ss = local_.ff_shexp;
      ShardPlan exp_rows;
      for (int64_t e = 0; e < X; ++e) exp_rows.rows.push_back({e * FE + es.begin, es.count});
      const ShardPlan exp_cols = {.cols = es}, sh_rows = {.rows = {ss}}, sh_cols = {.cols = ss};
      L.router = tensor(p + "ffn_gate_inp.weight", {E, X}, true);
      L.gate_exps = tensor(p + "ffn_gate_exps.weight", {E, FE, X}, true, true, &exp_rows);
      L.up_exps = tensor(p + "ffn_up_exps.weight", {E, FE, X}, true, true, &exp_rows);
      L.down_exps = tensor(p + "ffn_down_exps.weight", {FE, E, X}, true, true, &exp_cols);
      if (FS > 0) {
        L.shexp_gate_inp = tensor(p + "ffn_gate_inp_shexp.weight", {E}, true);
        L.shexp_gate = tensor(p + "ffn_gate_shexp.weight", {E, FS}, true, true, &sh_rows);
        L.shexp_up = tensor(p + "ffn_up_shexp.weight", {E, FS}, true, true, &sh_rows);
        L.shexp_down = tensor(p + "ffn_down_shexp.weight", {FS, E}, true, true, &sh_cols);
      }
      break;
    }
  }

  L.swa = !f_.swa_layers.empty() && f_.swa_layers[l];
  L.rope.n_rot = c.n_rot;
  L.rope.neox = c.rope_neox;
  L.rope.freq_base = L.swa && f_.rope_base_swa > 0.0f ? f_.rope_base_swa : c.rope_freq_base;
  // Linear / YaRN scaling applies to the global layers only (as llama.cpp's SWA layers).
  const bool scaled = !L.swa || f_.rope_base_swa == 0.0f;
  L.rope.freq_scale = scaled ? 1.0f / c.rope_scaling_factor : 1.0f;
  L.rope.ext_factor = scaled && c.rope_scaling == RopeScaling::YARN ? 1.0f : 0.0f;
  L.rope.beta_fast = c.yarn_beta_fast;
  L.rope.beta_slow = c.yarn_beta_slow;
  L.rope.n_ctx_orig = c.rope_n_ctx_orig;
  // Per-dimension frequency divisors: llama3-style rope_freqs, or Phi-3's longrope factors
  // (the short ones: the long ones are for contexts beyond the original training length).
  for (const char* name : {"rope_freqs.weight", "rope_factors_short.weight"}) {
    const gguf::TensorInfo* rf = file_->find_tensor(name);
    if (!rf) continue;
    if (rf->type != DType::F32 || rf->n_elements() != c.n_rot / 2)
      throw Error(std::string("tensor '") + name + "' must be F32 with n_rot/2 elements");
    L.rope.freq_factors = reinterpret_cast<const float*>(rf->data);
    break;
  }
  if (L.rope.freq_factors)
    L.rope.attn_factor =
        static_cast<float>(file_->get_float(c.arch + ".rope.scaling.attn_factor").value_or(1.0));
  layers_.push_back(L);
}

void DecoderModel::setup_parallel(const ModelOptions& opts) {
  const ModelConfig& c = config_;
  const int world = opts.comm != nullptr ? opts.comm->size() : 1;
  const int rank = opts.comm != nullptr ? opts.comm->rank() : 0;
  const int P = opts.pipeline_parallel_size;
  if (P < 1 || world % P != 0)
    throw Error("the number of processes (" + std::to_string(world) +
                ") is not a multiple of the pipeline-parallel size " + std::to_string(P));
  if (P > c.n_layer)
    throw Error("a pipeline of " + std::to_string(P) + " stages needs at least as many layers (" +
                std::to_string(c.n_layer) + ")");
  tp_size_ = world / P;
  tp_rank_ = rank % tp_size_;
  n_stages_ = P;
  stage_ = rank / tp_size_;
  if (tp_size_ > 1) {
    // Exact mode would gather every expert's hidden rows, on every rank, for each expert.
    if (f_.ffn == FfnKind::MOE && opts.tp_exact)
      throw Error("--tp-exact does not support " + c.arch +
                  " models with experts: leave it out to split them");
    tp_exact_ = opts.tp_exact;
  }
  // Every rank splits the same groups off the run's communicator, in the same order.
  if (P > 1) {
    tp_group_ = opts.comm->split(/*color=*/stage_, /*key=*/tp_rank_);
    pipe_group_ = opts.comm->split(/*color=*/tp_rank_, /*key=*/stage_);
    pipe_ = pipe_group_.get();
    if (tp_size_ > 1) comm_ = tp_group_.get();
  } else if (tp_size_ > 1) {
    comm_ = opts.comm;
  }
  const Span layers = shard_span(c.n_layer, stage_, P, "the number of layers");
  layer0_ = static_cast<int>(layers.begin);
  n_layer_local_ = static_cast<int>(layers.count);

  for (int r = 0; r < tp_size_; ++r) {
    const LocalDims d = local_dims(r);
    q_widths_.push_back(d.q_dim);
    ff_widths_.push_back(d.n_ff);
    embd_widths_.push_back(static_cast<int>(d.embd.count));
    vocab_widths_.push_back(static_cast<int>(vocab_span(r).count));
  }
  local_ = local_dims(tp_rank_);
  kv_dim_local_ = local_.kv_dim;
}

LocalDims DecoderModel::local_dims(int tp_rank) const {
  const ModelConfig& c = config_;
  LocalDims d;
  const HeadShard heads = head_span(c.n_head, c.n_head_kv, tp_rank, tp_size_);
  d.q_heads = heads.q_heads;
  d.kv_heads = heads.kv_heads;
  // The FFN rows (ffn_span): Wdown's columns are split on whole quantization blocks, those
  // of its stored type and of the type a load-time conversion gives it.
  const auto ff = [&](int64_t n, const char* down, const char* what) {
    int64_t block = 1;
    if (const gguf::TensorInfo* t =
            file_->find_tensor("blk." + std::to_string(layer0_) + "." + down + ".weight"))
      block = dtype_info(t->type).block_size;
    if (quant_ && tp_size_ > 1) block = std::max<int64_t>(block, dtype_info(*quant_).block_size);
    return ffn_span(n, block, tp_rank, tp_size_, what, tp_exact_);
  };
  // MoE layers have no dense FFN: every expert (and the shared one) is split as one.
  if (f_.ffn == FfnKind::MOE) {
    d.ff_exp = ff(f_.n_ff_exp, "ffn_down_exps", "the expert feed-forward size");
    if (f_.n_ff_shexp > 0)
      d.ff_shexp = ff(f_.n_ff_shexp, "ffn_down_shexp", "the shared expert feed-forward size");
  } else {
    d.ff = ff(c.n_ff, "ffn_down", "the feed-forward size");
  }
  d.embd =
      tp_exact_ ? shard_span(c.n_embd, tp_rank, tp_size_, "the embedding size") : Span{0, c.n_embd};
  d.n_head = static_cast<int>(d.q_heads.count);
  d.n_head_kv = static_cast<int>(d.kv_heads.count);
  d.n_ff = static_cast<int>(d.ff.count);
  d.q_dim = d.n_head * c.head_dim;
  d.kv_dim = d.n_head_kv * c.head_dim;
  return d;
}

Span DecoderModel::vocab_span(int tp_rank) const {
  const int64_t V = config_.n_vocab;
  return shard_span(V, tp_rank, tp_size_, "the vocabulary size",
                    V % kRepackRows == 0 ? kRepackRows : 1);
}

Tensor DecoderModel::f32_piece(const Tensor& b, int64_t offset, Span s) {
  return {DType::F32, {s.count, 1, 1, 1}, static_cast<const float*>(b.data) + offset + s.begin};
}

// Activations are host memory on the CPU backend; a device backend will need the
// collectives as ops of its own.
void DecoderModel::row_parallel(const Tensor& w, const float* in, const std::vector<int>& widths,
                                const Tensor* bias, int n) {
  Backend& be = *backend_;
  if (comm_ == nullptr) return be.matmul(w, in, tmp_, n, bias);  // [n, n_embd]
  if (!tp_exact_) {
    be.matmul(w, in, tmp_, n, bias);  // this rank's partial products [n, n_embd]
    comm_->all_reduce_sum(tmp_, int64_t{n} * config_.n_embd);
    return;
  }
  gather_columns(in, n, widths, whole_);  // [n, sum of widths]: every head / FFN row
  be.matmul(w, whole_, part_, n, bias);   // [n, this rank's n_embd rows]
  gather_columns(part_, n, embd_widths_, tmp_);
}

void DecoderModel::gather_columns(const float* local, int n, const std::vector<int>& widths,
                                  float* full) {
  const size_t T = static_cast<size_t>(tp_size_), rows = static_cast<size_t>(n);
  const size_t w_max = static_cast<size_t>(*std::max_element(widths.begin(), widths.end()));
  const size_t mine = static_cast<size_t>(widths[tp_rank_]);
  // all_gather takes equal parts: a narrower rank pads its rows to the widest rank's width.
  const float* send = local;
  if (mine != w_max) {
    gather_pad_.assign(rows * w_max, 0.0f);
    for (size_t t = 0; t < rows; ++t)
      std::memcpy(gather_pad_.data() + t * w_max, local + t * mine, sizeof(float) * mine);
    send = gather_pad_.data();
  }
  gather_scratch_.resize(T * rows * w_max);
  comm_->all_gather(send, static_cast<int64_t>(rows * w_max),
                    gather_scratch_.data());  // [T, n, w_max]
  float* dst = full;
  for (size_t t = 0; t < rows; ++t)
    for (size_t r = 0; r < T; ++r) {
      const size_t w = static_cast<size_t>(widths[r]);
      std::memcpy(dst, gather_scratch_.data() + (r * rows + t) * w_max, sizeof(float) * w);
      dst += w;
    }
}

void DecoderModel::release_buffers() {
  for (float* p :
       {x_, h_, q_, k_, v_, att_, gate_, up_, tmp_, xe_, ye_, router_, route_w_, whole_, part_})
    if (p) backend_->free_buffer(p);
  x_ = h_ = q_ = k_ = v_ = att_ = gate_ = up_ = tmp_ = xe_ = ye_ = router_ = route_w_ = whole_ =
      part_ = nullptr;
  capacity_ = 0;
}

void DecoderModel::ensure_capacity(int n) {
  if (n <= capacity_) return;
  release_buffers();
  const ModelConfig& c = config_;
  Backend& b = *backend_;
  const int64_t N = n;
  x_ = b.alloc(N * c.n_embd);
  h_ = b.alloc(N * c.n_embd);
  tmp_ = b.alloc(N * c.n_embd);
  q_ = b.alloc(N * local_.q_dim);
  att_ = b.alloc(N * local_.q_dim);
  k_ = b.alloc(N * local_.kv_dim);
  v_ = b.alloc(N * local_.kv_dim);
  gate_ = b.alloc(N * n_ff_max_);
  up_ = b.alloc(N * n_ff_max_);
  if (tp_exact_) {
    whole_ = b.alloc(N * std::max(c.q_dim(), c.n_ff));
    part_ = b.alloc(N * local_.embd.count);
  }
  if (f_.ffn == FfnKind::MOE) {
    xe_ = b.alloc(N * c.n_embd);
    ye_ = b.alloc(N * c.n_embd);
    router_ = b.alloc(N * f_.n_expert);
    route_w_ = b.alloc(N * f_.n_expert_used);
    route_ids_.resize(N * f_.n_expert_used);
  }
  capacity_ = n;
}

// tmp[n, n_embd] = Wo · attn(q, k, v) for the normalized input h. Head counts are this
// rank's (LocalDims); row_parallel makes Wo's product whole on every rank.
void DecoderModel::attention_block(const DecoderLayer& L, const KVLayer& kv,
                                   const AttentionBatch& ab, int n) {
  const ModelConfig& c = config_;
  Backend& be = *backend_;
  const int H = local_.n_head, HKV = local_.n_head_kv;
  be.matmul(L.wq, h_, q_, n, L.bq ? &L.bq : nullptr);  // q: [n, n_head * head_dim]
  be.matmul(L.wk, h_, k_, n, L.bk ? &L.bk : nullptr);  // k: [n, n_head_kv * head_dim]
  be.matmul(L.wv, h_, v_, n, L.bv ? &L.bv : nullptr);  // v: [n, n_head_kv * head_dim]
  if (L.q_norm) {
    // QK-norm: one RMSNorm per head, i.e. over rows of head_dim.
    be.rms_norm(q_, L.q_norm, q_, n * H, c.head_dim, c.rms_eps);
    be.rms_norm(k_, L.k_norm, k_, n * HKV, c.head_dim, c.rms_eps);
  }
  if (f_.alibi_max_bias == 0.0f) {
    be.rope(q_, n, H, c.head_dim, ab.pos, L.rope);
    be.rope(k_, n, HKV, c.head_dim, ab.pos, L.rope);
  }
  be.store_kv(kv, k_, v_, local_.kv_dim, ab);
  AttentionOptions o;
  o.scale = f_.attn_scale > 0.0f ? f_.attn_scale : 1.0f / std::sqrt(float(c.head_dim));
  o.n_window = L.swa ? f_.n_swa : 0;
  o.alibi_max_bias = f_.alibi_max_bias;
  // ALiBi slopes follow the model's head index: this rank's heads are a slice of them.
  o.alibi_head0 = static_cast<int>(local_.q_heads.begin);
  o.alibi_n_head = c.n_head;
  // A rank's query heads read only its own KV heads: local head h reads local KV head
  // h / (H / HKV) as globally (head_span keeps whole GQA groups together, or gives a rank
  // part of one group and its one KV head).
  if (o.n_window == 0 && o.alibi_max_bias == 0.0f)                // plain causal attention
    be.attention(q_, kv, att_, H, HKV, c.head_dim, o.scale, ab);  // [n, q_dim]
  else
    be.attention_ext(q_, kv, att_, H, HKV, c.head_dim, o, ab);
  row_parallel(L.wo, att_, q_widths_, L.bo ? &L.bo : nullptr, n);  // tmp: [n, n_embd]
}

// tmp[n, n_embd] = Wdown · act(Wgate·h, Wup·h), this rank computing its n_ff rows of act.
void DecoderModel::dense_ffn(const DecoderLayer& L, int n) {
  const int F = static_cast<int>(L.w_gate.rows());
  Backend& be = *backend_;
  be.matmul(L.w_gate, h_, gate_, n, nullptr);  // [n, n_ff]
  be.matmul(L.w_up, h_, up_, n, nullptr);      // [n, n_ff]
  if (f_.ffn == FfnKind::GEGLU)
    be.gelu_mul(gate_, up_, n, F);
  else
    be.silu_mul(gate_, up_, n, F);
  row_parallel(L.w_down, gate_, ff_widths_, nullptr, n);  // tmp: [n, n_embd]
}

// tmp[n, n_embd] = sum over the k experts e chosen for each token of w_e · expert_e(h),
// plus sigmoid(g·h) · shared(h) when there is a shared expert. Tokens are grouped by
// expert so each expert runs one batched matmul over the tokens that chose it. Under
// tensor parallelism every rank routes alike (the router is replicated) and computes its
// rows of each expert: the weighted sum of its partial products is a partial sum of the
// block output, made whole by one all-reduce at the end.
void DecoderModel::moe_ffn(const DecoderLayer& L, int n) {
  const ModelConfig& c = config_;
  Backend& be = *backend_;
  const int E = c.n_embd, X = f_.n_expert, K = f_.n_expert_used;
  const int FE = static_cast<int>(local_.ff_exp.count);
  be.matmul(L.router, h_, router_, n, nullptr);                             // [n, n_expert]
  be.moe_route(router_, n, X, K, f_.routing, route_ids_.data(), route_w_);  // [n, k] each

  be.zero(tmp_, n, E);
  for (int e = 0; e < X; ++e) {
    expert_rows_.clear();
    expert_w_.clear();
    for (int i = 0; i < n * K; ++i)
      if (route_ids_[i] == e) {
        expert_rows_.push_back(i / K);
        expert_w_.push_back(route_w_[i]);
      }
    const int m = static_cast<int>(expert_rows_.size());
    if (m == 0) continue;
    be.gather_rows(h_, expert_rows_.data(), m, E, xe_);         // [m, n_embd]
    be.matmul(expert(L.gate_exps, e), xe_, gate_, m, nullptr);  // [m, its n_ff_exp rows]
    be.matmul(expert(L.up_exps, e), xe_, up_, m, nullptr);      // [m, its n_ff_exp rows]
    be.silu_mul(gate_, up_, m, FE);
    be.matmul(expert(L.down_exps, e), gate_, ye_, m, nullptr);  // [m, n_embd]
    be.scatter_add_rows(ye_, expert_rows_.data(), expert_w_.data(), m, E, tmp_);
  }
  if (L.shexp_gate) {
    be.matmul(L.shexp_gate, h_, gate_, n, nullptr);  // [n, this rank's n_ff_shexp rows]
    be.matmul(L.shexp_up, h_, up_, n, nullptr);
    be.silu_mul(gate_, up_, n, static_cast<int>(local_.ff_shexp.count));
    be.matmul(L.shexp_down, gate_, ye_, n, nullptr);       // [n, n_embd]
    be.matmul(L.shexp_gate_inp, h_, router_, n, nullptr);  // [n, 1]
    be.add_scaled(tmp_, ye_, router_, n, E, /*sigmoid_w=*/true);
  }
  if (comm_ != nullptr) comm_->all_reduce_sum(tmp_, int64_t{n} * E);
}

void DecoderModel::forward(const ForwardBatch& batch, KVCache& kv, float* logits) {
  ensure_capacity(batch.n_tokens);  // before h_ is taken: it may move
  final_hidden(batch, kv, h_);      // h: [n_out, n_embd] on the last stage
  if (last_stage()) lm_head(batch.n_out, logits);
  if (pipe_ != nullptr && batch.n_out > 0)  // every rank returns the logits (none: no buffer)
    pipe_->broadcast(logits, int64_t{batch.n_out} * config_.n_vocab * int64_t{sizeof(float)},
                     n_stages_ - 1);
}

void DecoderModel::forward_hidden(const ForwardBatch& batch, KVCache& kv, float* hidden) {
  final_hidden(batch, kv, hidden);
  if (pipe_ != nullptr && batch.n_out > 0)
    pipe_->broadcast(hidden, int64_t{batch.n_out} * config_.n_embd * int64_t{sizeof(float)},
                     n_stages_ - 1);
}

void DecoderModel::final_hidden(const ForwardBatch& batch, KVCache& kv, float* hidden) {
  const ModelConfig& c = config_;
  const int n = batch.n_tokens;
  ensure_capacity(n);
  for (int i = 0; i < n; ++i)
    if (batch.tokens[i] < 0 || batch.tokens[i] >= c.n_vocab)
      throw Error("token id " + std::to_string(batch.tokens[i]) + " is outside the vocabulary");
  run_stages(batch, kv);
  if (!last_stage()) return;
  // Gather the rows that want an output, normalize.
  Backend& be = *backend_;
  be.gather_rows(x_, batch.out_rows, batch.n_out, c.n_embd, h_);
  be.rms_norm(h_, output_norm_, hidden, batch.n_out, c.n_embd, c.rms_eps);
}

void DecoderModel::run_stages(const ForwardBatch& batch, KVCache& kv) {
  const ModelConfig& c = config_;
  Backend& be = *backend_;
  const int n = batch.n_tokens;
  const int64_t E = c.n_embd;
  // Micro-batches: one without a pipeline; with one, up to 2 P of kMinMicroRows rows or more.
  const int n_micro = pipe_ == nullptr ? 1 : std::clamp(n / kMinMicroRows, 1, 2 * n_stages_);
  for (int m = 0; m < n_micro; ++m) {
    const int r0 = static_cast<int>(int64_t{n} * m / n_micro);
    const int rows = static_cast<int>(int64_t{n} * (m + 1) / n_micro) - r0;
    float* x = x_ + r0 * E;  // [rows, n_embd]: this micro-batch's residual stream
    const int64_t bytes = rows * E * int64_t{sizeof(float)};
    if (stage_ == 0) {
      be.get_rows(tok_embd_, batch.tokens + r0, rows, x);
      if (f_.embd_scale) be.scale(x, rows, c.n_embd, std::sqrt(float(c.n_embd)));
    } else {
      pipe_->recv(x, bytes, stage_ - 1, kActivationTag);
    }
    AttentionBatch ab;
    ab.n_tokens = rows;
    ab.pos = batch.pos + r0;
    ab.seq_of = batch.seq_of + r0;
    ab.block_tables = batch.block_tables;
    ab.slots = batch.slots + r0;
    ab.prompt_tiled = batch.prompt_tiled != nullptr ? batch.prompt_tiled + r0 : nullptr;
    ab.block_size = kv.block_size();
    run_layers(x, kv, ab, rows);
    if (!last_stage()) pipe_->send(x, bytes, stage_ + 1, kActivationTag);
  }
}

void DecoderModel::run_layers(float* x, KVCache& kv, const AttentionBatch& ab, int n) {
  const ModelConfig& c = config_;
  Backend& be = *backend_;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const DecoderLayer& L = layers_[i];
    // Attention block.
    be.rms_norm(x, L.attn_norm, h_, n, c.n_embd, c.rms_eps);
    attention_block(L, kv.layer(static_cast<int>(i)), ab, n);  // tmp: [n, n_embd]
    if (L.attn_post_norm) be.rms_norm(tmp_, L.attn_post_norm, tmp_, n, c.n_embd, c.rms_eps);
    be.add(x, tmp_, n, c.n_embd);
    // Feed-forward block.
    be.rms_norm(x, L.ffn_norm, h_, n, c.n_embd, c.rms_eps);
    if (f_.ffn == FfnKind::MOE)
      moe_ffn(L, n);  // tmp: [n, n_embd]
    else
      dense_ffn(L, n);
    if (L.ffn_post_norm) be.rms_norm(tmp_, L.ffn_post_norm, tmp_, n, c.n_embd, c.rms_eps);
    be.add(x, tmp_, n, c.n_embd);
  }
}

// logits[n_out, n_vocab] = Wout · h (soft-capped: final_softcap). Under TP each rank
// computes the columns of its vocabulary rows, [n_out, n_vocab / T], packed at the start of
// `logits`, and the ranks' columns are gathered into the whole rows on every rank.
void DecoderModel::lm_head(int n_out, float* logits) {
  Backend& be = *backend_;
  const int64_t V = config_.n_vocab, Vl = output_.rows();
  be.matmul(output_, h_, logits, n_out, nullptr);  // [n_out, Vl]
  if (f_.final_softcap > 0.0f) be.softcap(logits, n_out, static_cast<int>(Vl), f_.final_softcap);
  if (comm_ == nullptr) return;
  // In chunks of rows (the gather's scratch is [T, rows, max width]), last chunk first: the
  // whole rows of chunk [r0, r1) land at [r0 V, r1 V), past the packed rows of the chunks
  // before it ([0, r0 Vl)); gather_columns has read its input before it writes.
  const int chunk = static_cast<int>(std::max<int64_t>(1, kHeadGatherFloats / V));
  for (int r1 = n_out; r1 > 0;) {
    const int r0 = std::max(0, r1 - chunk);
    gather_columns(logits + r0 * Vl, r1 - r0, vocab_widths_, logits + r0 * V);
    r1 = r0;
  }
}

}  // namespace

std::unique_ptr<Model> make_decoder_model(std::unique_ptr<gguf::Source> file,
                                          const std::string& arch, const ModelOptions& opts,
                                          const DecoderFeatures& features) {
  return std::make_unique<DecoderModel>(std::move(file), arch, opts, features);
}

}  // namespace tessera
