#include "app/export_progress.hpp"

#include <array>

namespace sluice {
namespace {

std::string with_separators(std::uint64_t value) {
  std::string digits = std::to_string(value);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i != 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string clock_text(std::chrono::steady_clock::duration elapsed) {
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(elapsed).count();
  std::array<char, 32> text{};
  if (seconds >= 3600) {
    std::snprintf(text.data(), text.size(), "%lld:%02lld:%02lld",
                  static_cast<long long>(seconds / 3600), static_cast<long long>(seconds / 60 % 60),
                  static_cast<long long>(seconds % 60));
  } else {
    std::snprintf(text.data(), text.size(), "%lld:%02lld", static_cast<long long>(seconds / 60),
                  static_cast<long long>(seconds % 60));
  }
  return text.data();
}

}  // namespace

std::string human_bytes(std::uint64_t bytes) {
  constexpr std::array<const char*, 5> kUnits{"B", "kB", "MB", "GB", "TB"};
  auto value = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (value >= 1000 && unit + 1 < kUnits.size()) {
    value /= 1000;
    ++unit;
  }
  std::array<char, 32> text{};
  if (unit == 0) {
    std::snprintf(text.data(), text.size(), "%llu B", static_cast<unsigned long long>(bytes));
  } else {
    std::snprintf(text.data(), text.size(), "%.1f %s", value, kUnits[unit]);
  }
  return text.data();
}

std::string progress_line(std::uint64_t rows, std::uint64_t bytes,
                          std::chrono::steady_clock::duration elapsed) {
  const double seconds = std::chrono::duration<double>(elapsed).count();
  const auto rate = seconds > 0 ? static_cast<std::uint64_t>(static_cast<double>(bytes) / seconds) : 0;
  return with_separators(rows) + " rows  " + human_bytes(bytes) + "  " + human_bytes(rate) +
         "/s  " + clock_text(elapsed);
}

void ExportProgress::update(std::uint64_t rows, std::uint64_t bytes, Clock::time_point now) {
  if (out_ == nullptr || now - drawn_ < kInterval) return;
  drawn_ = now;
  // CR, the line, erase what a longer line before left (EL, ECMA-48).
  std::fprintf(out_, "\r%s\x1b[K", progress_line(rows, bytes, elapsed(now)).c_str());
  std::fflush(out_);
  visible_ = true;
}

void ExportProgress::clear() {
  if (out_ == nullptr || !visible_) return;
  std::fputs("\r\x1b[K", out_);
  std::fflush(out_);
  visible_ = false;
}

}  // namespace sluice
