// One logger setup for corewire and corewirectl (spdlog, default logger, on stderr).
//
// On a terminal or file: "2026-12-03T23:10:00.123Z info  corewire: message" (UTC).
// When stderr is the journal (systemd sets JOURNAL_STREAM to its device:inode):
// "<3>corewire: message", the sd-daemon priority prefix journald turns into the entry's
// priority, so `journalctl -p err` finds errors; journald adds the time itself.
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace cw::log {

// The level names accepted by log.level, --log-level, `corewirectl log-level` and the
// control socket, lowest first.
inline constexpr std::array<std::string_view, 7> kLevels = {"trace", "debug",    "info", "warn",
                                                            "error", "critical", "off"};
bool is_level(std::string_view l);
std::string levels_text(std::string_view sep);  // "trace|debug|..." with sep between

// True when fd 2 is the stream named by $JOURNAL_STREAM.
bool stderr_is_journal();

// Creates the default logger `name` at `level` (a kLevels name; else info), flushed per line.
void setup(const std::string& name, std::string_view level);
// Changes the default logger's level; false (unchanged) for a name not in kLevels.
bool set_level(std::string_view level);

// Before setup (usage and config errors): "name: msg" on stderr, with the journal's error
// priority prefix when stderr is the journal.
void early_error(std::string_view name, std::string_view msg);

}  // namespace cw::log
