#include "control/logging.hh"

#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

namespace cw::log {

namespace {

// %* : the syslog priority digit of the message's level (sd-daemon.h's SD_ERR etc.).
class PriorityFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& m, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    static constexpr char kPrio[] = {'7', '7', '6', '4', '3', '2', '6'};  // trace..off
    dest.push_back(kPrio[size_t(m.level) < sizeof kPrio ? size_t(m.level) : 6]);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<PriorityFlag>();
  }
};

spdlog::level::level_enum to_spdlog(std::string_view l) {
  static constexpr spdlog::level::level_enum kMap[] = {
      spdlog::level::trace, spdlog::level::debug,    spdlog::level::info, spdlog::level::warn,
      spdlog::level::err,   spdlog::level::critical, spdlog::level::off};
  for (size_t i = 0; i < kLevels.size(); ++i)
    if (kLevels[i] == l) return kMap[i];
  return spdlog::level::info;
}

}  // namespace

bool is_level(std::string_view l) {
  for (auto k : kLevels)
    if (k == l) return true;
  return false;
}

std::string levels_text(std::string_view sep) {
  std::string s;
  for (auto k : kLevels) (s += s.empty() ? "" : sep) += k;
  return s;
}

bool stderr_is_journal() {
  const char* js = std::getenv("JOURNAL_STREAM");
  if (!js) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(js, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st {};
  return ::fstat(2, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

void setup(const std::string& name, std::string_view level) {
  auto logger =
      std::make_shared<spdlog::logger>(name, std::make_shared<spdlog::sinks::stderr_sink_mt>());
  std::unique_ptr<spdlog::pattern_formatter> f;
  if (stderr_is_journal()) {
    f = std::make_unique<spdlog::pattern_formatter>();
    f->add_flag<PriorityFlag>('*').set_pattern("<%*>%n: %v");
  } else {
    f = std::make_unique<spdlog::pattern_formatter>("%Y-%m-%dT%H:%M:%S.%eZ %-5l %n: %v",
                                                    spdlog::pattern_time_type::utc);
  }
  logger->set_formatter(std::move(f));
  logger->set_level(to_spdlog(level));
  logger->flush_on(spdlog::level::trace);  // tests and supervisors read lines as they come
  spdlog::set_default_logger(std::move(logger));
}

bool set_level(std::string_view level) {
  if (!is_level(level)) return false;
  spdlog::set_level(to_spdlog(level));
  return true;
}

void early_error(std::string_view name, std::string_view msg) {
  std::fprintf(stderr, "%s%.*s: %.*s\n", stderr_is_journal() ? "<3>" : "", int(name.size()),
               name.data(), int(msg.size()), msg.data());
}

}  // namespace cw::log
