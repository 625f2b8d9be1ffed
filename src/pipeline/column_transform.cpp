#include "pipeline/column_transform.hpp"

#include <algorithm>
#include <cstring>
#include <optional>
#include <unordered_map>

#include "core/sha256.hpp"
#include "pipeline/text_functions.hpp"
#include "pipeline/timestamp_format.hpp"

namespace sluice {
namespace {

enum class ValueKind : std::uint8_t {
  kNone, kFormat, kPlaces, kBoolWords, kMap, kMaskEmail, kMaskLast, kMaskFixed, kHash,
};

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
};

std::string type_problem(const Column& source, std::string_view needs) {
  return "needs " + std::string(needs) + "; column '" + source.name + "' is " +
         std::string(to_string(source.type)) + " (set its `type` if the values are " +
         std::string(needs) + ")";
}

}  // namespace

struct ColumnTransform::Compiled {
  ValueKind kind = ValueKind::kNone;
  std::optional<TimestampFormat> timestamp;
  std::unique_ptr<HmacSha256> hmac;  // cloned per stream
  std::unordered_map<std::string, std::string, StringHash, std::equal_to<>> map;
  std::size_t longest_mapped = 0;
};

namespace {

class Worker final : public ColumnTransform::Worker {
 public:
  Worker(const ColumnTransformConfig& config, const ColumnTransform::Compiled& compiled,
         LogicalType output_type)
      : config_(config),
        compiled_(compiled),
        numeric_output_(is_numeric(output_type)),
        hmac_(compiled.hmac ? compiled.hmac->clone() : nullptr) {}

  void apply(RowBatch& batch, std::size_t row, std::size_t column) override {
    Cell in = batch.cell(row, column);
    if (in.null) {
      if (config_.null_text) batch.replace_with(row, column, *config_.null_text, true);
      return;
    }
    // The arena may move when it grows, and `in` points into it: reserve everything this cell
    // can need first, then read the cell again. Later reserve_value() calls ask for no more.
    const bool case_follows = config_.letter_case != LetterCase::kNone;
    const std::size_t value_room = compiled_.kind == ValueKind::kNone ? 0 : max_size(in.value);
    const std::size_t room =
        case_follows ? change_case_max_size(std::max(value_room, in.value.size()))
                     : value_room;
    if (room > 0) {
      batch.reserve_value(room);
      in = batch.cell(row, column);
    }
    // The value transform writes at the arena's end when it is the last writer (no `case`),
    // else into scratch space that `case` reads; truncation only shortens what is there.
    std::string_view current = in.value;
    bool at_end = false;  // current sits uncommitted at the arena's end
    if (compiled_.kind != ValueKind::kNone) {
      char* dest = case_follows ? scratch(value_room) : batch.reserve_value(value_room);
      const std::size_t size = write_value(in.value, dest);
      if (size != std::string_view::npos) {
        current = std::string_view(dest, size);
        at_end = !case_follows;
      } else if (numeric_output_) {
        batch.mark_text(row, column);  // passed on as it came, so not a number
      }
    }
    if (config_.truncate) current = first_code_points(current, *config_.truncate);
    if (case_follows) {
      char* dest = batch.reserve_value(change_case_max_size(current));
      const std::size_t size = config_.letter_case == LetterCase::kUpper ? to_upper(current, dest)
                                                                          : to_lower(current, dest);
      batch.replace_value(row, column, size);
      return;
    }
    if (at_end) {
      batch.replace_value(row, column, current.size());
    } else if (current.size() != in.value.size()) {
      batch.shorten_value(row, column, current.size());  // a truncated, otherwise untouched value
    }
  }

 private:
  std::size_t max_size(std::string_view value) const {
    switch (compiled_.kind) {
      case ValueKind::kFormat: return compiled_.timestamp->max_size();
      case ValueKind::kPlaces: return round_decimal_max_size(value, *config_.places);
      case ValueKind::kBoolWords: return std::max(config_.true_text->size(), config_.false_text->size());
      case ValueKind::kMap: return std::max(compiled_.longest_mapped, value.size());
      case ValueKind::kMaskEmail: return mask_email_max_size(value);
      case ValueKind::kMaskLast: return value.size();
      case ValueKind::kMaskFixed: return config_.mask_text.size();
      case ValueKind::kHash: return 64;
      case ValueKind::kNone: break;
    }
    return 0;
  }

  // Returns the bytes written at `dest`, or npos when the value passes on unchanged.
  std::size_t write_value(std::string_view value, char* dest) {
    auto copy = [dest](std::string_view text) {
      if (!text.empty()) std::memcpy(dest, text.data(), text.size());
      return text.size();
    };
    switch (compiled_.kind) {
      case ValueKind::kFormat: return compiled_.timestamp->format(value, dest, zone_hint_);
      case ValueKind::kPlaces: return round_decimal(value, *config_.places, dest);
      case ValueKind::kBoolWords: {
        std::optional<bool> flag = parse_bool(value);
        if (!flag) return std::string_view::npos;
        return copy(*flag ? *config_.true_text : *config_.false_text);
      }
      case ValueKind::kMap: {
        auto found = compiled_.map.find(value);
        if (found != compiled_.map.end()) return copy(found->second);
        return config_.map_default ? copy(*config_.map_default) : std::string_view::npos;
      }
      case ValueKind::kMaskEmail: return mask_email(value, dest);
      case ValueKind::kMaskLast: return mask_keep_last(value, config_.mask_keep, dest);
      case ValueKind::kMaskFixed: return copy(config_.mask_text);
      case ValueKind::kHash: hmac_->hex(value, dest); return 64;
      case ValueKind::kNone: break;
    }
    return std::string_view::npos;
  }

  char* scratch(std::size_t room) {
    if (scratch_.size() < room) scratch_.resize(std::max(room, scratch_.size() * 2));
    return scratch_.data();
  }

  const ColumnTransformConfig& config_;
  const ColumnTransform::Compiled& compiled_;
  const bool numeric_output_;
  std::unique_ptr<HmacSha256> hmac_;
  std::size_t zone_hint_ = 0;
  std::string scratch_;
};

ValueKind value_kind(const ColumnTransformConfig& config) {
  if (!config.format.empty()) return ValueKind::kFormat;
  if (config.places) return ValueKind::kPlaces;
  if (config.true_text) return ValueKind::kBoolWords;
  if (!config.map.empty()) return ValueKind::kMap;
  if (!config.hash_key.empty()) return ValueKind::kHash;
  switch (config.mask) {
    case MaskKind::kEmail: return ValueKind::kMaskEmail;
    case MaskKind::kKeepLast: return ValueKind::kMaskLast;
    case MaskKind::kFixed: return ValueKind::kMaskFixed;
    case MaskKind::kNone: break;
  }
  return ValueKind::kNone;
}

// The config key of the value transform, for messages.
std::string_view value_key(ValueKind kind) {
  switch (kind) {
    case ValueKind::kFormat: return "format";
    case ValueKind::kPlaces: return "places";
    case ValueKind::kBoolWords: return "true_text";
    case ValueKind::kMap: return "map";
    case ValueKind::kHash: return "hash";
    case ValueKind::kMaskEmail:
    case ValueKind::kMaskLast:
    case ValueKind::kMaskFixed: return "mask";
    case ValueKind::kNone: break;
  }
  return "";
}

void check_type(ValueKind kind, const ColumnTransformConfig& config, const Column& source) {
  const LogicalType type = source.type;
  switch (kind) {
    case ValueKind::kFormat:
      if (type != LogicalType::kTimestamp && type != LogicalType::kDate && type != LogicalType::kText) {
        throw ColumnTransformError("format", type_problem(source, "timestamps or dates"));
      }
      break;
    case ValueKind::kPlaces:
      if (!is_numeric(type) && type != LogicalType::kText) {
        throw ColumnTransformError("places", type_problem(source, "numbers"));
      }
      break;
    case ValueKind::kBoolWords:
      if (type != LogicalType::kBool && type != LogicalType::kInt && type != LogicalType::kText) {
        throw ColumnTransformError("true_text", type_problem(source, "booleans"));
      }
      break;
    default:
      break;
  }
  // Bytes are not text: only a hash (of the raw bytes) or a NULL text applies to them.
  const bool text_work = (kind != ValueKind::kNone && kind != ValueKind::kHash) ||
                         config.letter_case != LetterCase::kNone || config.truncate;
  if (type == LogicalType::kBytes && text_work) {
    std::string key(kind != ValueKind::kNone && kind != ValueKind::kHash ? value_key(kind)
                    : config.letter_case != LetterCase::kNone       ? "case"
                                                                    : "truncate");
    throw ColumnTransformError(key, "does not apply to bytes (column '" + source.name +
                                        "'); only hash and null_text do");
  }
}

LogicalType written_type(ValueKind kind, const ColumnTransformConfig& config, const Column& source) {
  if (kind == ValueKind::kPlaces && config.letter_case == LetterCase::kNone && !config.truncate) {
    return LogicalType::kDecimal;
  }
  if (kind != ValueKind::kNone || config.letter_case != LetterCase::kNone || config.truncate) {
    return LogicalType::kText;
  }
  return source.type;  // rename and/or null_text only
}

}  // namespace

ColumnTransform::ColumnTransform(const ColumnTransformConfig& config, const Column& source)
    : config_(config), output_(source), compiled_(std::make_unique<Compiled>()) {
  compiled_->kind = value_kind(config);
  check_type(compiled_->kind, config, source);
  if (!config.rename.empty()) output_.name = config.rename;
  output_.type = written_type(compiled_->kind, config, source);
  if (config.changes_values()) output_.source_type = 0;  // no longer the source's own encoding
  switch (compiled_->kind) {
    case ValueKind::kFormat:
      try {
        compiled_->timestamp.emplace(config.format, config.time_zone, config.input_time_zone);
      } catch (const TimestampFormatError& error) {
        using Part = TimestampFormatError::Part;
        throw ColumnTransformError(error.part() == Part::kPattern ? "format"
                                   : error.part() == Part::kZone  ? "time_zone"
                                                                  : "input_time_zone",
                                   error.what());
      }
      break;
    case ValueKind::kHash:
      compiled_->hmac = std::make_unique<HmacSha256>(config.hash_key);
      break;
    case ValueKind::kMap:
      for (const auto& [from, to] : config.map) {
        compiled_->map.emplace(from, to);
        compiled_->longest_mapped = std::max(compiled_->longest_mapped, to.size());
      }
      if (config.map_default) {
        compiled_->longest_mapped = std::max(compiled_->longest_mapped, config.map_default->size());
      }
      break;
    default:
      break;
  }
}

ColumnTransform::~ColumnTransform() = default;
ColumnTransform::ColumnTransform(ColumnTransform&&) noexcept = default;
ColumnTransform& ColumnTransform::operator=(ColumnTransform&&) noexcept = default;

std::unique_ptr<ColumnTransform::Worker> ColumnTransform::start() const {
  return std::make_unique<sluice::Worker>(config_, *compiled_, output_.type);
}

const ColumnTransform* ColumnTransforms::find(std::string_view source_name) const {
  auto found = std::ranges::find(transforms_, source_name, &ColumnTransform::source_name);
  return found == transforms_.end() ? nullptr : &*found;
}

Column ColumnTransforms::output_column(const Column& source) const {
  const ColumnTransform* transform = find(source.name);
  return transform == nullptr ? source : transform->output();
}

bool ColumnTransforms::changes_values(std::span<const Column> columns) const {
  return std::ranges::any_of(columns, [this](const Column& column) {
    const ColumnTransform* transform = find(column.name);
    return transform != nullptr && transform->changes_values();
  });
}

RowTransformer::RowTransformer(const ColumnTransforms& transforms, std::span<const Column> columns) {
  output_.reserve(columns.size());
  for (std::size_t i = 0; i < columns.size(); ++i) {
    output_.push_back(transforms.output_column(columns[i]));
    const ColumnTransform* transform = transforms.find(columns[i].name);
    if (transform != nullptr && transform->changes_values()) workers_.push_back({i, transform->start()});
  }
}

RowTransformer::~RowTransformer() = default;

void RowTransformer::apply(RowBatch& batch) {
  if (workers_.empty()) return;
  const std::size_t rows = batch.rows();
  for (std::size_t row = 0; row < rows; ++row) {
    for (ColumnWorker& worker : workers_) worker.worker->apply(batch, row, worker.column);
  }
}

}  // namespace sluice
