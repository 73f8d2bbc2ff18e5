// Overloaded: builds a visitor for std::visit from lambdas.
//
//   std::visit(Overloaded{[](const A&) { ... }, [](const B&) { ... }}, v);
#pragma once

namespace loom {

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

}  // namespace loom
