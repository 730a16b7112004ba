// Tree-walking renderer for parsed templates.
//
// Scoping follows jinja2: `for` bodies and macro calls get a fresh scope per iteration/call
// (assignments there do not leak out; namespace() objects are the way to carry state out),
// while `if` bodies share the enclosing scope.
#pragma once

#include <string>

#include "template/jinja_ast.h"

namespace tessera::jinja {

// Renders `program` with the variables of `context` (a dict Value) on top of the globals.
// Throws tessera::Error (TemplateRaised for raise_exception) on runtime errors; other errors
// carry "chat template error (line N): " in front of the message.
std::string render_template(const StmtList& program, const Value& context);

}  // namespace tessera::jinja
