#include "template/chat_template.h"

#include "core/error.h"
#include "template/jinja_eval.h"
#include "template/jinja_parser.h"

namespace tessera {

namespace {

template <class Json>
std::string render_json(const jinja::StmtList& program, const Json& ctx) {
  if (!ctx.is_object()) throw Error("chat template context must be a JSON object");
  jinja::Value context = jinja::Value::from_json(ctx);
  for (const char* key : {"tools", "documents"}) {
    if (!context.dict_data().find_key(key))
      context.dict_data().set(jinja::Value(key), jinja::Value::none());
  }
  return jinja::render_template(program, context);
}

}  // namespace

ChatTemplate::ChatTemplate(std::string source)
    : source_(std::move(source)),
      program_(std::make_shared<const jinja::StmtList>(jinja::parse_template(source_))) {}

ChatTemplate::~ChatTemplate() = default;
ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;

std::string ChatTemplate::render(const nlohmann::json& ctx) const {
  return render_json(*program_, ctx);
}

std::string ChatTemplate::render(const nlohmann::ordered_json& ctx) const {
  return render_json(*program_, ctx);
}

}  // namespace tessera
