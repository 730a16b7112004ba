// Text inputs of embedding and scoring requests -> token ids, with the special tokens the
// model's tokenizer adds ([CLS] text [SEP] for BERT; BOS / EOS as a decoder's tokenizer
// asks) and the truncation of Hugging Face tokenizers: the text's tokens are cut, the
// special tokens stay.
#pragma once
#include <string_view>
#include <vector>

#include "embed/embedding.h"
#include "tokenizer/tokenizer.h"

namespace tessera {

// A text longer than `limit` tokens (special tokens included) is cut to `limit` when
// `truncate`, else refused with tessera::Error "... N tokens, more than the maximum of
// `limit`". Text matching special tokens ("[SEP]") becomes those tokens, as in
// Hugging Face tokenizers.
EmbedInput tokenize_text(const Tokenizer& tok, std::string_view text, int limit, bool truncate);

// A cross-encoder pair: "[CLS] a [SEP] b [SEP]" with segment ids 0 for "[CLS] a [SEP]" and 1
// for "b [SEP]" (WordPiece vocabularies), or RoBERTa's "<s> a </s></s> b </s>" (segment 0).
// Too long: both texts cut as Hugging Face's "longest_first" does, when `truncate`.
EmbedInput tokenize_pair(const Tokenizer& tok, std::string_view a, std::string_view b, int limit,
                         bool truncate);

}  // namespace tessera
