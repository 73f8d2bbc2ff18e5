// Checkpoint writing is ordered so that every crash point leaves a loadable
// latest checkpoint: files -> fsync -> directory rename -> fsync parent ->
// `latest` (AtomicFile) -> pruning (rename away first, then delete).
#include "loom/train/checkpoint.h"

#include <fcntl.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "loom/core/error.h"
#include "loom/format/atomic_file.h"
#include "loom/train/optimizer.h"

namespace loom::train {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kFormat = "loom-checkpoint";
constexpr int kVersion = 1;
constexpr std::string_view kStepPrefix = "step-";

std::string step_name(int64_t step) { return fmt::format("step-{:06}", step); }

// The step of a "step-<digits>" name, or -1.
int64_t parse_step_name(std::string_view name) {
  if (!name.starts_with(kStepPrefix)) return -1;
  name.remove_prefix(kStepPrefix.size());
  int64_t step = -1;
  const auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), step);
  if (ec != std::errc() || end != name.data() + name.size() || name.empty() || step < 0) return -1;
  return step;
}

void fsync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  LOOM_CHECK(fd >= 0, "[train] {}: cannot open the directory to fsync it: {}", dir.string(), std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  LOOM_CHECK(rc == 0, "[train] {}: fsync failed: {}", dir.string(), std::strerror(err));
}

void rename_or_fail(const fs::path& from, const fs::path& to) {
  if (::rename(from.c_str(), to.c_str()) != 0)
    fail("[train] cannot rename {} to {}: {}", from.string(), to.string(), std::strerror(errno));
}

void write_text(const fs::path& path, const std::string& text) {
  format::AtomicFile out(path.string());
  out.write(text.data(), text.size());
  out.commit();
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  LOOM_CHECK(in, "[train] {}: cannot open it", path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  LOOM_CHECK(!in.bad(), "[train] {}: read failed", path.string());
  return std::move(ss).str();
}

nlohmann::json read_json(const fs::path& path) {
  const std::string text = read_text(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("[train] {}: not valid JSON ({}); the checkpoint is damaged", path.string(), e.what());
  }
}

// Removes what interrupted saves and prunes left behind: hidden ".step-*"
// directories and a stray latest.tmp.
void remove_leftovers(const fs::path& dir) {
  std::vector<fs::path> stale;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.starts_with(".step-") || name == "latest.tmp") stale.push_back(e.path());
  }
  for (const auto& p : stale) {
    std::error_code ec;
    fs::remove_all(p, ec);
    LOOM_CHECK(!ec, "[train] {}: cannot remove the leftover of an interrupted save: {}", p.string(), ec.message());
  }
}

// Moves a step directory out of sight (atomically) and deletes it, so a
// crash half-way through the deletion never leaves a damaged step-N behind.
void retire(const fs::path& dir, const fs::path& step_dir) {
  const fs::path old = dir / fmt::format(".{}.old", step_dir.filename().string());
  std::error_code ec;
  fs::remove_all(old, ec);
  rename_or_fail(step_dir, old);
  fs::remove_all(old, ec);
}

}  // namespace

std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& dir) {
  std::vector<std::pair<int64_t, std::string>> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const int64_t step = parse_step_name(e.path().filename().string());
    if (step >= 0 && e.is_directory()) out.emplace_back(step, e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string save_checkpoint(const std::string& dir_path, int64_t step, std::span<const NamedTensor> model,
                            const nlohmann::json& config, const AdamW& optimizer, const nlohmann::json& loader_state,
                            const nlohmann::json& extra, const CheckpointOptions& o) {
  LOOM_CHECK(step >= 0, "[train] checkpoint step must be >= 0, got {}", step);
  LOOM_CHECK(config.is_object(), "[train] the model configuration (config.json) must be a JSON object");
  auto stage = [&](std::string_view s) {
    if (o.on_stage) o.on_stage(s);
  };
  const fs::path dir(dir_path);
  fs::create_directories(dir);
  remove_leftovers(dir);
  const std::string name = step_name(step);
  const fs::path tmp = dir / fmt::format(".{}.tmp", name);
  const fs::path final_dir = dir / name;
  fs::create_directory(tmp);

  {
    format::SafetensorsWriter w;
    w.set_metadata("format", "pt");  // what Hugging Face loaders expect
    for (const NamedTensor& t : model) {
      int64_t n = 1;
      for (int64_t d : t.shape) n *= d;
      LOOM_CHECK(n == int64_t(t.data.size()), "[train] checkpoint: tensor '{}' has shape [{}] ({} values) but {} given",
                 t.name, fmt::join(t.shape, ", "), n, t.data.size());
      w.add_tensor(t.name, DType::F32, t.shape, t.data.data());
    }
    w.write((tmp / o.model_file).string());
    stage(o.model_file);
  }
  {
    format::SafetensorsWriter w;
    w.set_metadata("optimizer", "adamw");
    w.set_metadata("step", std::to_string(optimizer.steps()));
    const auto& params = optimizer.params();
    for (size_t i = 0; i < params.size(); ++i) {
      w.add_tensor("m." + params[i].name, DType::F32, {params[i].size}, optimizer.m(i).data());
      w.add_tensor("v." + params[i].name, DType::F32, {params[i].size}, optimizer.v(i).data());
    }
    w.write((tmp / "optimizer.safetensors").string());
    stage("optimizer.safetensors");
  }
  write_text(tmp / o.config_file, config.dump(2) + "\n");
  stage(o.config_file);
  for (const std::string& f : o.copy_files) {
    const std::string base = fs::path(f).filename().string();
    write_text(tmp / base, read_text(f));
    stage(base);
  }
  const nlohmann::json state = {
      {"format", kFormat}, {"version", kVersion}, {"step", step}, {"loader", loader_state}, {"extra", extra}};
  write_text(tmp / "trainer_state.json", state.dump(2) + "\n");
  stage("trainer_state.json");
  fsync_dir(tmp);  // the files' names (AtomicFile synced their bytes)
  stage("synced");

  // A step written twice (a run resumed from an earlier checkpoint): the old
  // one goes out of sight first, since rename() cannot replace a non-empty directory.
  const fs::path replaced = dir / fmt::format(".{}.old", name);
  const bool replacing = fs::exists(final_dir);
  if (replacing) rename_or_fail(final_dir, replaced);
  rename_or_fail(tmp, final_dir);
  fsync_dir(dir);
  stage("renamed");
  write_text(dir / "latest", name + "\n");  // AtomicFile: temporary, fsync, rename, fsync dir
  stage("latest");
  if (replacing) {
    std::error_code ec;
    fs::remove_all(replaced, ec);
  }

  if (o.keep_last > 0) {
    // The newest keep_last checkpoints up to this step stay. Higher steps
    // (left by a run that was rolled back) are not this run's to delete.
    auto all = list_checkpoints(dir_path);
    std::erase_if(all, [&](const auto& c) { return c.first >= step; });
    const auto keep_others = size_t(o.keep_last - 1);
    if (all.size() > keep_others)
      for (size_t i = 0; i < all.size() - keep_others; ++i) retire(dir, all[i].second);
  }
  stage("pruned");
  return final_dir.string();
}

Checkpoint Checkpoint::open(const std::string& step_dir) {
  const fs::path dir(step_dir);
  Checkpoint c;
  c.path_ = step_dir;
  // A LoRA checkpoint is a PEFT adapter folder.
  const bool adapter = !fs::exists(dir / "config.json") && fs::exists(dir / "adapter_config.json");
  c.config_ = read_json(dir / (adapter ? "adapter_config.json" : "config.json"));
  c.state_ = read_json(dir / "trainer_state.json");
  const std::string sp = (dir / "trainer_state.json").string();
  LOOM_CHECK(c.state_.is_object() && c.state_.value("format", "") == kFormat,
             "[train] {}: not a loom checkpoint (\"format\" is not \"{}\")", sp, kFormat);
  LOOM_CHECK(c.state_.value("version", 0) == kVersion, "[train] {}: checkpoint version {}, this loom reads {}", sp,
             c.state_.value("version", 0), kVersion);
  LOOM_CHECK(c.state_.contains("step") && c.state_["step"].is_number_integer() && c.state_.contains("loader") &&
                 c.state_.contains("extra"),
             "[train] {}: missing \"step\", \"loader\" or \"extra\"", sp);
  c.step_ = c.state_["step"].get<int64_t>();
  const int64_t named = parse_step_name(dir.filename().string());
  LOOM_CHECK(named < 0 || named == c.step_, "[train] {}: the directory is step {} but trainer_state.json says {}",
             step_dir, named, c.step_);
  const char* weights = adapter ? "adapter_model.safetensors" : "model.safetensors";
  c.model_ = format::SafetensorsFile::open((dir / weights).string());
  c.optimizer_ = format::SafetensorsFile::open((dir / "optimizer.safetensors").string());
  return c;
}

void Checkpoint::read_tensor(std::string_view name, std::span<float> out) const {
  const format::SafetensorsTensor* t = model_->find_tensor(name);
  LOOM_CHECK(t != nullptr, "[train] {}: no tensor '{}'", model_->path(), name);
  LOOM_CHECK(t->dtype_name == "F32" && t->nbytes == out.size() * sizeof(float),
             "[train] {}: tensor '{}' is {} of {} bytes, expected F32 of {} values", model_->path(), name,
             t->dtype_name, t->nbytes, out.size());
  if (t->nbytes > 0) std::memcpy(out.data(), t->data, t->nbytes);
}

std::vector<float> Checkpoint::tensor(std::string_view name) const {
  const format::SafetensorsTensor* t = model_->find_tensor(name);
  LOOM_CHECK(t != nullptr, "[train] {}: no tensor '{}'", model_->path(), name);
  std::vector<float> out(t->nbytes / sizeof(float));
  read_tensor(name, out);
  return out;
}

void Checkpoint::restore_optimizer(AdamW& opt) const {
  const auto& f = *optimizer_;
  std::optional<int64_t> steps;
  for (const auto& [k, v] : f.metadata())
    if (k == "step") {
      int64_t s = -1;
      const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), s);
      if (ec == std::errc() && end == v.data() + v.size() && s >= 0) steps = s;
    }
  LOOM_CHECK(steps.has_value(), "[train] {}: no valid \"step\" in the metadata", f.path());
  const auto& params = opt.params();
  LOOM_CHECK(f.tensors().size() == 2 * params.size(),
             "[train] {}: {} moment tensors for an optimizer of {} parameters (expected {})", f.path(),
             f.tensors().size(), params.size(), 2 * params.size());
  std::vector<std::vector<float>> m(params.size()), v(params.size());
  auto read = [&](const std::string& name, int64_t size, std::vector<float>& out) {
    const format::SafetensorsTensor* t = f.find_tensor(name);
    LOOM_CHECK(t != nullptr, "[train] {}: no tensor '{}'; was the checkpoint saved for another model?", f.path(), name);
    LOOM_CHECK(t->dtype_name == "F32" && t->nbytes == uint64_t(size) * sizeof(float),
               "[train] {}: '{}' is {} of {} bytes, expected F32 of {} values", f.path(), name, t->dtype_name,
               t->nbytes, size);
    out.resize(size_t(size));
    if (size > 0) std::memcpy(out.data(), t->data, t->nbytes);
  };
  for (size_t i = 0; i < params.size(); ++i) {
    read("m." + params[i].name, params[i].size, m[i]);
    read("v." + params[i].name, params[i].size, v[i]);
  }
  opt.restore(*steps, m, v);
}

std::optional<Checkpoint> load_latest_checkpoint(const std::string& dir_path) {
  const fs::path dir(dir_path);
  if (!fs::is_directory(dir)) return std::nullopt;
  // `latest` first: it is the run's own answer (a rolled-back run may have
  // higher-numbered step directories that are not its latest).
  std::error_code ec;
  if (fs::is_regular_file(dir / "latest", ec)) {
    try {
      std::string name = read_text(dir / "latest");
      while (!name.empty() && (name.back() == '\n' || name.back() == '\r' || name.back() == ' ')) name.pop_back();
      if (parse_step_name(name) >= 0) return Checkpoint::open((dir / name).string());
    } catch (const Error&) {
      // fall back to scanning
    }
  }
  auto all = list_checkpoints(dir_path);
  std::string first_error;
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    try {
      return Checkpoint::open(it->second);
    } catch (const Error& e) {
      if (first_error.empty()) first_error = e.what();
    }
  }
  LOOM_CHECK(all.empty(), "[train] {}: no checkpoint opens; the newest fails with: {}", dir_path, first_error);
  return std::nullopt;
}

}  // namespace loom::train
