// Recursive-descent parser: template source -> statement tree. Operator precedence follows
// jinja2's parser (condexpr < or < and < not < compare < +,- < ~ < *,/,//,% < ** < unary <
// postfix/filters/tests).
#pragma once

#include <string_view>

#include "template/jinja_ast.h"

namespace tessera::jinja {

// Throws tessera::Error("chat template syntax error (line N): ...") on invalid source.
StmtList parse_template(std::string_view source);

}  // namespace tessera::jinja
