#include "py_json.h"

#include <nanobind/stl/string.h>

#include "core/error.h"

namespace nb = nanobind;

namespace tessera::python {

namespace {

constexpr int kMaxDepth = 64;

nlohmann::ordered_json convert(nb::handle h, const std::string& where, int depth) {
  if (depth > kMaxDepth) throw Error(where + ": nested too deeply");
  if (h.is_none()) return nullptr;
  if (nb::isinstance<nb::bool_>(h)) return nb::cast<bool>(h);
  if (nb::isinstance<nb::str>(h)) return nb::cast<std::string>(h);
  if (nb::isinstance<nb::float_>(h)) return nb::cast<double>(h);
  if (nb::isinstance<nb::int_>(h) || (!nb::isinstance<nb::float_>(h) && PyIndex_Check(h.ptr()))) {
    nb::object i = nb::steal(PyNumber_Index(h.ptr()));
    if (!i.is_valid()) throw nb::python_error();
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(i.ptr(), &overflow);
    if (overflow == 0) return static_cast<int64_t>(v);
    if (overflow > 0) {
      const unsigned long long u = PyLong_AsUnsignedLongLong(i.ptr());
      if (!PyErr_Occurred()) return static_cast<uint64_t>(u);
      PyErr_Clear();
    }
    throw Error(where + ": integer out of range");
  }
  if (nb::isinstance<nb::list>(h) || nb::isinstance<nb::tuple>(h)) {
    nlohmann::ordered_json a = nlohmann::ordered_json::array();
    size_t i = 0;
    for (nb::handle x : h)
      a.push_back(convert(x, where + "[" + std::to_string(i++) + "]", depth + 1));
    return a;
  }
  if (nb::isinstance<nb::dict>(h)) {
    nlohmann::ordered_json o = nlohmann::ordered_json::object();
    for (auto [k, v] : nb::borrow<nb::dict>(h)) {
      if (!nb::isinstance<nb::str>(k)) throw Error(where + ": dict keys must be strings");
      const std::string key = nb::cast<std::string>(k);
      o[key] = convert(v, where.empty() ? key : where + "." + key, depth + 1);
    }
    return o;
  }
  if (PyFloat_Check(h.ptr()) || nb::hasattr(h, "__float__")) {
    const double d = PyFloat_AsDouble(h.ptr());
    if (d == -1.0 && PyErr_Occurred()) throw nb::python_error();
    return d;
  }
  throw Error(where + ": unsupported value of type " +
              nb::cast<std::string>(nb::str(h.type().attr("__name__"))));
}

}  // namespace

nlohmann::ordered_json to_json(nb::handle h, const std::string& where) {
  return convert(h, where, 0);
}

}  // namespace tessera::python
