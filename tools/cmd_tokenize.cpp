// tessera tokenize: text -> token ids (JSON array with --ids, else one "id 'piece'" a line).
#include <cstdio>

#include "cli_common.h"
#include "loader/gguf.h"
#include "loader/hf_source.h"
#include "tokenizer/tokenizer.h"

namespace tessera::cli {

Runner add_tokenize(CLI::App& app) {
  struct Opts {
    std::string model, file, prompt;
    bool no_bos = false, ids = false, no_parse_special = false;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("-m,--model", o->model,
                 "GGUF model (or vocab-only) file, or Hugging Face model directory")
      ->required();
  auto* f = app.add_option("-f,--file", o->file, "text file");
  auto* p = app.add_option("-p,--prompt", o->prompt, "text");
  f->excludes(p);
  app.add_flag("--no-bos", o->no_bos, "do not add the BOS/EOS tokens the model asks for");
  app.add_flag("--ids", o->ids, "print only the ids, as a JSON array");
  app.add_flag("--no-parse-special", o->no_parse_special,
               "treat the text of special tokens as plain text");
  return [o, f, p] {
    if (f->count() == 0 && p->count() == 0) throw Error("give the text with -f FILE or -p TEXT");
    // Only the vocabulary is needed: no model weights are touched.
    std::unique_ptr<gguf::Source> file;
    if (hf::is_hf_path(o->model))
      file = hf::open_hf_directory(o->model);
    else
      file = gguf::File::open(o->model);
    auto tok = Tokenizer::from_gguf(*file);
    const std::string text = f->count() ? read_file(o->file) : o->prompt;
    std::vector<int32_t> ids = tok->encode(text, !o->no_bos, !o->no_parse_special);
    if (o->ids) {
      std::string out = "[";
      for (size_t i = 0; i < ids.size(); ++i) {
        if (i) out += ", ";
        out += std::to_string(ids[i]);
      }
      out += "]\n";
      std::fputs(out.c_str(), stdout);
    } else {
      for (int32_t id : ids)
        std::printf("%6d -> '%s'\n", id, tok->token_to_piece(id, true).c_str());
    }
    return 0;
  };
}

}  // namespace tessera::cli
