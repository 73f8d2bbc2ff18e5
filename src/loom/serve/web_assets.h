// The chat page's static files (web/ at the repository root), embedded into
// the binary at build time by embed_web.cmake, so `loom serve` needs no files
// beside it and the page loads nothing from the network.
//
//   for (const WebAsset& a : web_assets()) server.Get(a.path, ...a.content_type, a.data...);
#pragma once

#include <span>
#include <string_view>

namespace loom::serve {

struct WebAsset {
  std::string_view path;          // URL path: "/index.html", "/app.js", ...
  std::string_view content_type;  // "text/html; charset=utf-8", ...
  std::string_view data;
};

std::span<const WebAsset> web_assets();

}  // namespace loom::serve
