#include "features/cubes/cube_builder.hpp"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cctype>
#include <boost/json.hpp>
#include <chrono>
#include <limits>
#include <numeric>
#include <unordered_map>
#include <unordered_set>

#include "core/crc32.hpp"
#include "core/log.hpp"
#include "core/sha256.hpp"
#include "core/utf8.hpp"
#include "cube/cube_format.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;

constexpr std::size_t kMaxMetrics = 64;
constexpr std::uint64_t kMaxFileBytes = std::uint64_t{1} << 30;
constexpr std::size_t kWriteChunk = 1 << 20;
constexpr std::size_t kMaxManifestBytes = 256u << 20;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string shown(std::string_view text) { return "\"" + shown_text(text) + "\""; }

CubeDictionary dictionary_of(const std::string& name, std::vector<std::string> values) {
  CubeDictionary dictionary;
  dictionary.name = name;
  dictionary.values = std::move(values);
  return dictionary;
}

// A dimension's values as they arrive, each given an id; declared dictionaries are given their
// ids up front (id = position) and accept nothing else.
class Interner {
 public:
  explicit Interner(const std::vector<std::string>& declared) : declared_(!declared.empty()) {
    for (const std::string& value : declared) add(value);
  }
  // The id of `value`, or nothing when the dictionary is declared and lacks it.
  std::optional<std::uint32_t> id(std::string_view value) {
    // Grouped query results repeat a value row after row: no hash for a repeat.
    if (last_ < values_.size() && values_[last_] == value) return last_;
    auto it = ids_.find(value);
    if (it != ids_.end()) {
      last_ = it->second;
      return it->second;
    }
    if (declared_) return std::nullopt;
    last_ = add(value);
    return last_;
  }
  bool declared() const { return declared_; }
  const std::vector<std::string>& values() const { return values_; }
  // rank[id]: the id's position in the dictionary (sorted values unless declared).
  std::vector<std::uint32_t> ranks() const {
    std::vector<std::uint32_t> rank(values_.size());
    if (declared_) {
      std::iota(rank.begin(), rank.end(), 0u);
      return rank;
    }
    std::vector<std::uint32_t> order(values_.size());
    std::iota(order.begin(), order.end(), 0u);
    std::ranges::sort(order, [&](std::uint32_t a, std::uint32_t b) { return values_[a] < values_[b]; });
    for (std::uint32_t position = 0; position < order.size(); ++position) rank[order[position]] = position;
    return rank;
  }
  std::vector<std::string> ordered_values() const {
    std::vector<std::string> out = values_;
    if (!declared_) std::ranges::sort(out);
    return out;
  }

 private:
  std::uint32_t add(std::string_view value) {
    const auto id = static_cast<std::uint32_t>(values_.size());
    ids_.emplace(std::string(value), id);
    values_.emplace_back(value);
    return id;
  }
  bool declared_;
  std::uint32_t last_ = std::numeric_limits<std::uint32_t>::max();  // the id found last
  std::unordered_map<std::string, std::uint32_t, StringHash, std::equal_to<>> ids_;
  std::vector<std::string> values_;
};

struct MetricStats {
  bool any = false;
  bool nulls = false;
  std::int64_t min = 0;
  std::int64_t max = 0;
  std::size_t longest = 0;
};

// Every row of the query, held compactly until the dictionaries are known.
struct Rows {
  std::size_t count = 0;
  std::vector<std::uint32_t> coords;    // per row: path combination, file ids, body ids
  std::vector<std::int64_t> payload;    // per row and metric: integer, float bits, text ref
  std::vector<std::uint64_t> nulls;     // per row: a bit per NULL metric
  std::string texts;                    // text metric values back to back
};

class Builder {
 public:
  Builder(const CubeConfig& cube, Source& source, ObjectStore& store)
      : cube_(cube), source_(source), store_(store) {
    for (const auto& dimension : cube.file) file_.emplace_back(dimension.values);
    for (const auto& dimension : cube.body) body_.emplace_back(dimension.values);
    path_.assign(cube.path.size(), Interner({}));
    stats_.resize(cube.metrics.size());
  }

  // `incremental`: only the path combinations the cube's changed_query names are read and
  // written, within the current version's layout. Returns nothing when the changed data does not
  // fit that layout (a new dimension value, a wider value, a fuller record): build in full then.
  asio::awaitable<std::optional<CubeBuildStats>> run(bool incremental) {
    if (cube_.metrics.size() > kMaxMetrics) fail("more than 64 metrics");
    const auto started = std::chrono::steady_clock::now();
    co_await load_previous();
    if (incremental && previous_manifest_ && !cube_.changed_query.empty()) {
      if (!layout_matches_config()) co_return std::nullopt;  // the config changed: in full
      incremental_ = true;
      QuerySpec changed = co_await changed_rows_query();
      if (too_many_changes_) co_return std::nullopt;
      if (!changed_.empty()) {
        co_await read_rows(std::move(changed));
      } else {
        result_.version = previous_manifest_->version;  // nothing changed: nothing to publish
        result_.unchanged = true;
        result_.files = previous_manifest_->files.size();
        result_.record_size = previous_manifest_->schema.record_size;
        result_.query_seconds = seconds_since(started);
        co_return result_;
      }
      if (!fits_previous()) co_return std::nullopt;
    } else {
      QuerySpec query;
      query.sql = cube_.query;
      co_await read_rows(std::move(query));
      if (rows_.count == 0) fail("the query returned no rows: nothing published (the current version stays)");
    }
    result_.rows = rows_.count;
    result_.incremental = incremental_;
    result_.query_seconds = seconds_since(started);
    const auto writing = std::chrono::steady_clock::now();
    std::exception_ptr failure;
    try {
      if (incremental_) {
        schema_ = previous_manifest_->schema;
        for (const CubeDictionary& dictionary : schema_.file) file_rank_.push_back(identity(dictionary.values.size()));
        for (const CubeDictionary& dictionary : schema_.body) body_rank_.push_back(identity(dictionary.values.size()));
        const std::uint32_t slots = schema_.slots;
        order_rows();
        if (schema_.slots > slots) throw DoesNotFit{};  // a record fuller than the layout holds
        schema_.slots = slots;
        result_.record_size = schema_.record_size;
      } else {
        make_schema();
      }
      co_await write_files();
      co_await publish();
    } catch (...) {
      failure = std::current_exception();
    }
    if (failure) {
      for (const std::string& key : written_) {
        try {
          co_await store_.remove(key);
        } catch (const std::exception& error) {
          log_event("cube " + cube_.name + ": could not delete " + key + " of a failed build: " + error.what());
        }
      }
      std::rethrow_exception(failure);
    }
    result_.write_seconds = seconds_since(writing);
    // Published: deleting old versions is housekeeping, and its failure fails nothing.
    std::string cleanup_problem;
    try {
      co_await delete_old_versions();
    } catch (const std::exception& error) {
      cleanup_problem = error.what();
    }
    if (!cleanup_problem.empty()) {
      log_event("cube " + cube_.name + ": could not delete old versions: " + cleanup_problem);
    }
    co_return result_;
  }

  // Raised while reading an incremental build's rows that do not fit the current layout.
  struct DoesNotFit {};

 private:

  static std::vector<std::uint32_t> identity(std::size_t size) {
    std::vector<std::uint32_t> out(size);
    std::iota(out.begin(), out.end(), 0u);
    return out;
  }

  // Runs changed_query: the path combinations to build again, into changed_. Returns the
  // cube's query limited to them.
  asio::awaitable<QuerySpec> changed_rows_query() {
    const std::vector<Column> columns = source_.describe(cube_.changed_query);
    std::vector<std::size_t> path_columns;
    for (const std::string& name : cube_.path) {
      std::size_t i = 0;
      while (i < columns.size() && columns[i].name != name) ++i;
      if (i == columns.size()) fail("changed_query returns no column " + shown(name) + " (it must return the path dimensions)");
      path_columns.push_back(i);
    }
    QuerySpec query;
    query.sql = cube_.changed_query;
    query.request_id = "cube-changes-" + cube_.name;
    const auto executor = co_await asio::this_coro::executor;
    std::unique_ptr<BatchReader> reader = co_await source_.open(std::move(query), ReadBudget{}, executor, columns);
    std::vector<std::vector<std::string>> combinations;
    while (RowBatch* batch = co_await reader->next()) {
      for (std::size_t r = 0; r < batch->rows(); ++r) {
        std::vector<std::string> values;
        std::string joined;
        for (std::size_t column : path_columns) {
          const Cell cell = batch->cell(r, column);
          if (cell.null) fail("changed_query returned NULL for a path dimension");
          values.emplace_back(cell.value);
          joined += values.back();
          joined.push_back('\0');
        }
        if (changed_.insert(joined).second) combinations.push_back(std::move(values));
      }
    }
    QuerySpec rows;
    rows.request_id = "cube-build-" + cube_.name;
    if (combinations.empty()) co_return rows;
    // Within SQLite's 32766 parameters, with room to spare; beyond, a full build is as cheap.
    if (combinations.size() * cube_.path.size() > 30'000) {
      too_many_changes_ = true;
      co_return rows;
    }
    std::string tuple;
    for (std::size_t d = 0; d < cube_.path.size(); ++d) {
      tuple += (d ? ", " : "") + std::string("CAST(\"") + cube_.path[d] + "\" AS TEXT)";
    }
    std::string values;
    std::size_t parameter = 0;
    for (const auto& combination : combinations) {
      values += values.empty() ? "(" : ", (";
      for (std::size_t d = 0; d < combination.size(); ++d) {
        values += (d ? ", " : "") + source_.placeholder(parameter++, FilterType::kText);
        rows.params.emplace_back(combination[d]);
      }
      values += ")";
    }
    std::string_view inner = cube_.query;  // (a trailing ';' cannot stand in a subquery)
    while (!inner.empty() && (inner.back() == ';' || std::isspace(static_cast<unsigned char>(inner.back())) != 0)) {
      inner.remove_suffix(1);
    }
    rows.sql = "SELECT * FROM (" + std::string(inner) + "\n) AS sluice_cube WHERE (" + tuple + ") IN (VALUES " +
               values + ")";
    co_return rows;
  }

  // Whether the current version was laid out for the cube as configured now: the same
  // dimensions in the same order, the same metrics (name, type, scale), the same declared
  // dictionaries. Anything else needs a full build.
  bool layout_matches_config() const {
    const CubeSchema& schema = previous_manifest_->schema;
    if (schema.path != cube_.path || schema.file.size() != cube_.file.size() ||
        schema.body.size() != cube_.body.size() || schema.metrics.size() != cube_.metrics.size()) {
      return false;
    }
    auto same = [](const std::vector<CubeDictionary>& built, const std::vector<CubeDimensionConfig>& config) {
      for (std::size_t d = 0; d < built.size(); ++d) {
        if (built[d].name != config[d].name) return false;
        if (!config[d].values.empty() && built[d].values != config[d].values) return false;
      }
      return true;
    };
    if (!same(schema.file, cube_.file) || !same(schema.body, cube_.body)) return false;
    for (std::size_t m = 0; m < schema.metrics.size(); ++m) {
      const CubeMetricLayout& built = schema.metrics[m];
      const CubeMetricConfig& config = cube_.metrics[m];
      if (built.name != config.name || built.type != config.type || built.scale != config.scale) return false;
      if (built.type == CubeMetricType::kText &&
          (built.length_bytes == 1) != (config.max_length < 0x100)) {
        return false;
      }
    }
    return true;
  }

  // Whether the rows read fit the current version's layout.
  bool fits_previous() const {
    const CubeSchema& schema = previous_manifest_->schema;
    for (std::size_t m = 0; m < schema.metrics.size(); ++m) {
      const CubeMetricLayout& metric = schema.metrics[m];
      const MetricStats& stats = stats_[m];
      if (stats.nulls && metric.null_bit < 0) return false;
      if (!stats.any) continue;
      switch (metric.type) {
        case CubeMetricType::kInt64:
        case CubeMetricType::kDecimal: {
          if (stats.min < metric.base) return false;
          const std::uint64_t span = static_cast<std::uint64_t>(stats.max) - static_cast<std::uint64_t>(metric.base);
          if (metric.bits < 64 && span >> metric.bits != 0) return false;
          break;
        }
        case CubeMetricType::kFloat64: break;
        case CubeMetricType::kText:
          if (stats.longest > metric.bits / 8 - metric.length_bytes) return false;
          break;
      }
    }
    return true;
  }

  [[noreturn]] void fail(const std::string& problem) const {
    throw CubeBuildError("cube " + shown(cube_.name) + ": " + problem);
  }

  std::size_t column_of(const std::vector<Column>& columns, const std::string& name) const {
    for (std::size_t i = 0; i < columns.size(); ++i) {
      if (columns[i].name == name) return i;
    }
    std::string names;
    for (const Column& column : columns) names += (names.empty() ? "" : ", ") + column.name;
    fail("the query returns no column " + shown(name) + " (it returns: " + names + ")");
  }

  asio::awaitable<void> read_rows(QuerySpec query) {
    const std::vector<Column> columns = source_.describe(query.sql);
    std::vector<std::size_t> path_columns;
    std::vector<std::size_t> file_columns;
    std::vector<std::size_t> body_columns;
    std::vector<std::size_t> metric_columns;
    for (const std::string& name : cube_.path) path_columns.push_back(column_of(columns, name));
    for (const auto& dimension : cube_.file) file_columns.push_back(column_of(columns, dimension.name));
    for (const auto& dimension : cube_.body) body_columns.push_back(column_of(columns, dimension.name));
    for (const auto& metric : cube_.metrics) metric_columns.push_back(column_of(columns, metric.name));

    query.request_id = "cube-build-" + cube_.name;
    if (incremental_) {
      // The current version's dictionaries, as if declared; another value does not fit.
      file_.clear();
      body_.clear();
      for (const CubeDictionary& dictionary : previous_manifest_->schema.file) file_.emplace_back(dictionary.values);
      for (const CubeDictionary& dictionary : previous_manifest_->schema.body) body_.emplace_back(dictionary.values);
    }
    ReadBudget budget;
    budget.batch_bytes = 256 * 1024;
    budget.first_batch_rows = 4096;
    const auto executor = co_await asio::this_coro::executor;
    std::unique_ptr<BatchReader> reader = co_await source_.open(std::move(query), budget, executor, columns);
    std::string combination;
    const std::size_t metrics = cube_.metrics.size();
    while (RowBatch* batch = co_await reader->next()) {
      for (std::size_t r = 0; r < batch->rows(); ++r) {
        const std::uint64_t row = rows_.count + 1;  // 1-based in messages
        combination.clear();
        for (std::size_t d = 0; d < path_columns.size(); ++d) {
          const Cell cell = batch->cell(r, path_columns[d]);
          check_dimension(cell, cube_.path[d], row, true);
          const std::uint32_t id = *path_[d].id(cell.value);
          combination.append(reinterpret_cast<const char*>(&id), sizeof id);
        }
        if (combinations_.empty() || combination != last_combination_) {
          auto [it, added] = combinations_.try_emplace(combination, static_cast<std::uint32_t>(combinations_.size()));
          if (added) combination_keys_.push_back(combination);
          last_combination_ = combination;
          last_combination_id_ = it->second;
        }
        rows_.coords.push_back(last_combination_id_);
        for (std::size_t d = 0; d < file_columns.size(); ++d) {
          rows_.coords.push_back(dimension_id(file_[d], batch->cell(r, file_columns[d]), cube_.file[d], row));
        }
        for (std::size_t d = 0; d < body_columns.size(); ++d) {
          rows_.coords.push_back(dimension_id(body_[d], batch->cell(r, body_columns[d]), cube_.body[d], row));
        }
        std::uint64_t nulls = 0;
        for (std::size_t m = 0; m < metrics; ++m) {
          const Cell cell = batch->cell(r, metric_columns[m]);
          if (cell.null) {
            nulls |= std::uint64_t{1} << m;
            stats_[m].nulls = true;
            rows_.payload.push_back(0);
          } else {
            rows_.payload.push_back(metric_payload(m, cell.value, row));
          }
        }
        rows_.nulls.push_back(nulls);
        ++rows_.count;
      }
    }
  }

  void check_dimension(const Cell& cell, const std::string& name, std::uint64_t row, bool in_path) const {
    if (cell.null) {
      fail("row " + std::to_string(row) + ": dimension " + shown(name) +
           " is NULL (name it in the query, e.g. COALESCE(" + name + ", 'unknown'))");
    }
    if (in_path && cell.value.empty()) {
      fail("row " + std::to_string(row) + ": path dimension " + shown(name) +
           " is empty (a URL path segment cannot be)");
    }
    if (!valid_utf8(cell.value)) {
      fail("row " + std::to_string(row) + ": dimension " + shown(name) + " is not valid UTF-8");
    }
  }

  std::uint32_t dimension_id(Interner& interner, const Cell& cell, const CubeDimensionConfig& dimension,
                             std::uint64_t row) const {
    check_dimension(cell, dimension.name, row, false);
    if (auto id = interner.id(cell.value)) return *id;
    if (incremental_) throw DoesNotFit{};
    fail("row " + std::to_string(row) + ": dimension " + shown(dimension.name) + ": value " +
         shown(cell.value) + " is not among its declared values (" + dimension.values.front() +
         " .. " + dimension.values.back() + ", " + std::to_string(dimension.values.size()) +
         " values; line " + std::to_string(dimension.line) + ")");
  }

  std::int64_t metric_payload(std::size_t m, std::string_view text, std::uint64_t row) {
    const CubeMetricConfig& metric = cube_.metrics[m];
    MetricStats& stats = stats_[m];
    auto bad = [&](std::string_view what) {
      fail("row " + std::to_string(row) + ": metric " + shown(metric.name) + ": " + shown(text) +
           " is not " + std::string(what));
    };
    std::int64_t value = 0;
    switch (metric.type) {
      case CubeMetricType::kInt64: {
        auto parsed = parse_cube_int(text);
        if (!parsed) bad("an int64");
        value = *parsed;
        break;
      }
      case CubeMetricType::kDecimal: {
        auto parsed = parse_cube_decimal(text, metric.scale);
        if (!parsed) bad("a decimal that fits 18 digits at scale " + std::to_string(metric.scale));
        value = *parsed;
        break;
      }
      case CubeMetricType::kFloat64: {
        auto parsed = parse_cube_float(text);
        if (!parsed) bad("a finite float64");
        stats.any = true;
        return std::bit_cast<std::int64_t>(*parsed);
      }
      case CubeMetricType::kText: {
        if (text.size() > metric.max_length) {
          bad("at most max_length = " + std::to_string(metric.max_length) + " bytes long");
        }
        if (!valid_utf8(text)) bad("valid UTF-8");
        const std::size_t offset = rows_.texts.size();
        rows_.texts.append(text);
        stats.any = true;
        stats.longest = std::max(stats.longest, text.size());
        return static_cast<std::int64_t>((offset << 13) | text.size());
      }
    }
    if (!stats.any) {
      stats.min = stats.max = value;
      stats.any = true;
    } else {
      stats.min = std::min(stats.min, value);
      stats.max = std::max(stats.max, value);
    }
    return value;
  }

  void make_schema() {
    schema_.path = cube_.path;
    for (std::size_t d = 0; d < cube_.file.size(); ++d) {
      schema_.file.push_back(dictionary_of(cube_.file[d].name, file_[d].ordered_values()));
      file_rank_.push_back(file_[d].ranks());
    }
    for (std::size_t d = 0; d < cube_.body.size(); ++d) {
      schema_.body.push_back(dictionary_of(cube_.body[d].name, body_[d].ordered_values()));
      body_rank_.push_back(body_[d].ranks());
    }
    for (CubeDictionary& dictionary : schema_.file) dictionary.index();
    for (CubeDictionary& dictionary : schema_.body) dictionary.index();
    int null_bit = 0;
    for (std::size_t m = 0; m < cube_.metrics.size(); ++m) {
      const CubeMetricConfig& config = cube_.metrics[m];
      const MetricStats& stats = stats_[m];
      CubeMetricLayout metric;
      metric.name = config.name;
      metric.type = config.type;
      metric.scale = config.scale;
      if (stats.nulls) metric.null_bit = null_bit++;
      switch (config.type) {
        case CubeMetricType::kInt64:
        case CubeMetricType::kDecimal:
          metric.base = stats.min;
          metric.bits = static_cast<std::uint32_t>(std::bit_width(
              static_cast<std::uint64_t>(stats.max) - static_cast<std::uint64_t>(stats.min)));
          break;
        case CubeMetricType::kFloat64: metric.bits = 64; break;
        case CubeMetricType::kText:
          metric.length_bytes = config.max_length < 0x100 ? 1 : 2;
          metric.bits = static_cast<std::uint32_t>(8 * (metric.length_bytes + stats.longest));
          break;
      }
      schema_.metrics.push_back(std::move(metric));
    }
    schema_.slots = 1;
    schema_.finish_layout();  // records and body keys, for the positions below
    order_rows();
    schema_.finish_layout();  // with the slots found
    result_.record_size = schema_.record_size;
  }

  // Sorts the rows by file (path values in order), record and body key; finds the most entries
  // any record has; refuses two rows for one cell.
  void order_rows() {
    const std::size_t stride = 1 + cube_.file.size() + cube_.body.size();
    // Files in the order of their path values.
    std::vector<std::vector<std::uint32_t>> path_rank;
    for (const Interner& interner : path_) path_rank.push_back(interner.ranks());
    std::vector<std::uint32_t> files(combination_keys_.size());
    std::iota(files.begin(), files.end(), 0u);
    auto path_ids = [&](std::uint32_t combination, std::size_t d) {
      std::uint32_t id = 0;
      std::memcpy(&id, combination_keys_[combination].data() + d * sizeof id, sizeof id);
      return id;
    };
    std::ranges::sort(files, [&](std::uint32_t a, std::uint32_t b) {
      for (std::size_t d = 0; d < path_.size(); ++d) {
        const std::uint32_t ra = path_rank[d][path_ids(a, d)];
        const std::uint32_t rb = path_rank[d][path_ids(b, d)];
        if (ra != rb) return ra < rb;
      }
      return false;
    });
    file_order_ = files;
    std::vector<std::uint32_t> file_position(files.size());
    for (std::uint32_t i = 0; i < files.size(); ++i) file_position[files[i]] = i;
    // Each row's key within its file: record position * body keys + body key position.
    const std::uint64_t body_keys = schema_.body_keys;
    if (schema_.records > std::numeric_limits<std::uint64_t>::max() / body_keys) {
      fail("too many combinations of the file and body dimensions' values");
    }
    // Counting sort by file, moving each row's values next to its file's other rows (written in
    // row order: sequential reads, so the later passes read each file's rows from one block).
    file_start_.assign(files.size() + 1, 0);
    for (std::size_t row = 0; row < rows_.count; ++row) ++file_start_[file_position[rows_.coords[row * stride]] + 1];
    std::partial_sum(file_start_.begin(), file_start_.end(), file_start_.begin());
    std::vector<std::uint64_t> next(file_start_.begin(), file_start_.end() - 1);
    const std::size_t metrics = cube_.metrics.size();
    sorted_.resize(rows_.count);
    grouped_row_.resize(rows_.count);
    grouped_payload_.resize(rows_.count * metrics);
    grouped_nulls_.resize(rows_.count);
    for (std::size_t row = 0; row < rows_.count; ++row) {
      const std::uint32_t* coords = &rows_.coords[row * stride];
      const std::uint64_t at = next[file_position[coords[0]]]++;
      std::uint64_t record = 0;
      for (std::size_t d = 0; d < cube_.file.size(); ++d) {
        record = record * schema_.file[d].values.size() + file_rank_[d][coords[1 + d]];
      }
      std::uint64_t slot = 0;
      for (std::size_t d = 0; d < cube_.body.size(); ++d) {
        slot = slot * schema_.body[d].values.size() + body_rank_[d][coords[1 + cube_.file.size() + d]];
      }
      sorted_[at] = {record * body_keys + slot, static_cast<std::uint32_t>(at)};
      grouped_row_[at] = static_cast<std::uint32_t>(row);
      std::copy_n(&rows_.payload[row * metrics], metrics, &grouped_payload_[at * metrics]);
      grouped_nulls_[at] = rows_.nulls[row];
    }
    std::vector<std::int64_t>().swap(rows_.payload);
    std::vector<std::uint64_t>().swap(rows_.nulls);
    // Each file's rows by key; two rows for one key are for one cell.
    std::uint32_t most = 1;
    for (std::size_t f = 0; f < files.size(); ++f) {
      auto begin = sorted_.begin() + static_cast<std::ptrdiff_t>(file_start_[f]);
      auto end = sorted_.begin() + static_cast<std::ptrdiff_t>(file_start_[f + 1]);
      std::sort(begin, end);
      std::uint32_t run = 0;
      for (auto it = begin; it != end; ++it) {
        if (it != begin && it->first / body_keys == (it - 1)->first / body_keys) {
          if (it->first == (it - 1)->first) duplicate(grouped_row_[it->second], grouped_row_[(it - 1)->second]);
          ++run;
        } else {
          run = 1;
        }
        most = std::max(most, run);
      }
    }
    schema_.slots = cube_.body.empty() ? 1 : most;
  }

  [[noreturn]] void duplicate(std::uint32_t row, std::uint32_t other) const {
    const std::size_t stride = 1 + cube_.file.size() + cube_.body.size();
    std::string cell;
    const std::string& combination = combination_keys_[rows_.coords[row * stride]];
    for (std::size_t d = 0; d < path_.size(); ++d) {
      std::uint32_t id = 0;
      std::memcpy(&id, combination.data() + d * sizeof id, sizeof id);
      cell += (cell.empty() ? "" : ", ") + cube_.path[d] + "=" + path_[d].values()[id];
    }
    for (std::size_t d = 0; d < cube_.file.size(); ++d) {
      cell += ", " + cube_.file[d].name + "=" + file_[d].values()[rows_.coords[row * stride + 1 + d]];
    }
    for (std::size_t d = 0; d < cube_.body.size(); ++d) {
      cell += ", " + cube_.body[d].name + "=" +
              body_[d].values()[rows_.coords[row * stride + 1 + cube_.file.size() + d]];
    }
    fail("rows " + std::to_string(std::min(row, other) + 1) + " and " + std::to_string(std::max(row, other) + 1) +
         " are for the same cell (" + cell + "): aggregate them in the query (GROUP BY the dimensions)");
  }

  asio::awaitable<void> load_previous() {
    std::optional<std::string> pointer_text = co_await store_.get(cube_pointer_key(cube_.name), 1 << 20);
    if (!pointer_text) co_return;
    try {
      pointer_ = parse_cube_pointer(*pointer_text);
    } catch (const CubeFormatError& error) {
      log_event("cube " + cube_.name + ": the current pointer is unreadable (" + error.what() +
               "): replacing it; its versions are not deleted");
      co_return;
    }
    std::optional<std::string> manifest_text = co_await store_.get(pointer_->manifest_key, kMaxManifestBytes);
    if (!manifest_text) co_return;
    try {
      CubeManifest previous = parse_cube_manifest(*manifest_text);
      for (const CubeFileEntry& file : previous.files) {
        std::string joined;
        for (const std::string& value : file.path) joined += value + '\0';
        previous_files_.emplace(std::move(joined), file);
      }
      previous_manifest_ = std::move(previous);
    } catch (const CubeFormatError& error) {
      log_event("cube " + cube_.name + ": the current manifest is unreadable (" + error.what() +
               "): every file is written again");
    }
  }

  asio::awaitable<void> write_files() {
    version_ = new_cube_version(now_ms());
    result_.version = version_;
    manifest_.cube = cube_.name;
    manifest_.version = version_;
    manifest_.built_at_ms = now_ms();
    manifest_.rows = rows_.count;
    const std::size_t metrics = cube_.metrics.size();
    const boost::json::object schema_json = schema_.to_json();
    const std::uint64_t data_bytes = schema_.records * schema_.record_size;
    if (data_bytes > kMaxFileBytes) {
      fail("a file would hold " + std::to_string(data_bytes) + " bytes of records (at most 1 GiB): " +
           "move a file dimension into the path");
    }
    std::string data;
    std::vector<std::uint64_t> slots;
    std::vector<CubeValue> values;
    for (std::size_t f = 0; f < file_order_.size(); ++f) {
      const std::string& combination = combination_keys_[file_order_[f]];
      CubeFileEntry entry;
      boost::json::object path_values;
      for (std::size_t d = 0; d < path_.size(); ++d) {
        std::uint32_t id = 0;
        std::memcpy(&id, combination.data() + d * sizeof id, sizeof id);
        entry.path.push_back(path_[d].values()[id]);
        path_values[cube_.path[d]] = entry.path.back();
      }
      data.assign(data_bytes, '\0');
      const std::uint64_t begin = file_start_[f];
      const std::uint64_t end = file_start_[f + 1];
      entry.rows = end - begin;
      const std::uint64_t body_keys = schema_.body_keys;
      for (std::uint64_t i = begin; i < end;) {
        const std::uint64_t record = sorted_[i].first / body_keys;
        slots.clear();
        values.clear();
        for (; i < end && sorted_[i].first / body_keys == record; ++i) {
          slots.push_back(sorted_[i].first % body_keys);
          for (std::size_t m = 0; m < metrics; ++m) values.push_back(value_of(sorted_[i].second, m));
        }
        schema_.write_record(data.data() + record * schema_.record_size, slots, values);
        ++entry.cells;
      }
      const std::string header = write_cube_file_header(
          boost::json::serialize(boost::json::object{{"cube", cube_.name}, {"path", std::move(path_values)},
                                                     {"schema", schema_json}}),
          schema_.record_size, schema_.records, crc32_update(0, data));
      Sha256 sha;
      sha.update(header);
      sha.update(data);
      entry.sha256 = to_hex(sha.final());
      entry.size = header.size() + data.size();
      entry.data_offset = header.size();
      std::string joined;
      for (const std::string& value : entry.path) joined += value + '\0';
      auto previous = previous_files_.find(joined);
      bool reuse = previous != previous_files_.end() && previous->second.sha256 == entry.sha256 &&
                   previous->second.size == entry.size;
      // Still there? (Another build of this cube may have deleted it: builds of one cube should
      // not run at once, and this narrows what one at a time would not see.)
      if (reuse) reuse = (co_await store_.head(previous->second.key)).has_value();
      if (reuse) {
        entry.key = previous->second.key;  // unchanged: the new version refers to it
      } else {
        char name[32];
        std::snprintf(name, sizeof name, "%06zu.cube", f);
        entry.key = cube_version_prefix(cube_.name, version_) + name;
        co_await store_file(entry.key, header, data);
        ++result_.files_written;
        result_.bytes_written += entry.size;
      }
      result_.bytes_stored += entry.size;
      result_.cells += entry.cells;
      manifest_.files.push_back(std::move(entry));
      // Laying out a file is CPU work without a wait: let the job's lease renewal (same thread) run.
      co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    }
    if (incremental_) {
      // The files of the path combinations that did not change, as they are.
      for (const CubeFileEntry& file : previous_manifest_->files) {
        std::string joined;
        for (const std::string& value : file.path) joined += value + '\0';
        if (changed_.contains(joined)) continue;
        result_.bytes_stored += file.size;
        result_.cells += file.cells;
        manifest_.files.push_back(file);
      }
      std::ranges::sort(manifest_.files, {}, &CubeFileEntry::path);
    }
    result_.files = manifest_.files.size();
    manifest_.rows = 0;  // (an incremental build read only some of them)
    for (const CubeFileEntry& file : manifest_.files) manifest_.rows += file.rows;
    manifest_.schema = schema_;
  }

  // Metric m of the row at grouped position `at`.
  CubeValue value_of(std::uint32_t at, std::size_t m) const {
    CubeValue value;
    value.null = ((grouped_nulls_[at] >> m) & 1) != 0;
    if (value.null) return value;
    const std::int64_t payload = grouped_payload_[at * cube_.metrics.size() + m];
    switch (cube_.metrics[m].type) {
      case CubeMetricType::kInt64:
      case CubeMetricType::kDecimal: value.integer = payload; break;
      case CubeMetricType::kFloat64: value.real = std::bit_cast<double>(payload); break;
      case CubeMetricType::kText: {
        const auto ref = static_cast<std::uint64_t>(payload);
        value.text = std::string_view(rows_.texts).substr(ref >> 13, ref & 0x1fff);
        break;
      }
    }
    return value;
  }

  asio::awaitable<void> store_file(const std::string& key, const std::string& header, const std::string& data) {
    std::unique_ptr<ObjectWriter> writer = co_await store_.write(key);
    co_await writer->write(header);
    for (std::size_t at = 0; at < data.size(); at += kWriteChunk) {
      co_await writer->write(std::string_view(data).substr(at, kWriteChunk));
    }
    written_.push_back(key);
    co_await writer->commit();
  }

  asio::awaitable<void> publish() {
    const std::string manifest_key = cube_version_prefix(cube_.name, version_) + "manifest.json";
    std::string manifest = cube_manifest_json(manifest_);
    written_.push_back(manifest_key);
    co_await store_.put(manifest_key, std::move(manifest));
    CubePointer pointer;
    pointer.version = version_;
    pointer.manifest_key = manifest_key;
    pointer.published_at_ms = now_ms();
    if (pointer_) {
      pointer.retired = pointer_->retired;
      pointer.retired.push_back(CubeRetired{pointer_->version, pointer_->manifest_key, pointer.published_at_ms});
    }
    // From here on nothing this build wrote is deleted: a put whose answer was lost may have
    // switched the pointer all the same (an unpublished version's objects then stay).
    written_.clear();
    co_await store_.put(cube_pointer_key(cube_.name), cube_pointer_json(pointer));
    pointer_ = std::move(pointer);
  }

  // Versions retired longer than keep_versions ago: their objects that neither the current
  // version nor a version still kept refers to, then their manifests.
  asio::awaitable<void> delete_old_versions() {
    const std::int64_t now = now_ms();
    const std::int64_t keep_ms = std::chrono::duration_cast<std::chrono::milliseconds>(cube_.keep_versions).count();
    std::vector<CubeRetired> expired;
    std::vector<CubeRetired> kept;
    for (const CubeRetired& old : pointer_->retired) {
      (old.retired_at_ms + keep_ms <= now ? expired : kept).push_back(old);
    }
    if (expired.empty()) co_return;
    std::unordered_map<std::string, bool> referenced;
    for (const CubeFileEntry& file : manifest_.files) referenced[file.key] = true;
    bool complete = true;
    for (const CubeRetired& old : kept) {
      std::optional<std::string> text = co_await store_.get(old.manifest_key, kMaxManifestBytes);
      if (!text) continue;
      try {
        for (const CubeFileEntry& file : parse_cube_manifest(*text).files) referenced[file.key] = true;
      } catch (const CubeFormatError&) {
        complete = false;  // cannot tell what it refers to: delete nothing
      }
    }
    if (!complete) co_return;
    for (const CubeRetired& old : expired) {
      try {
        std::optional<std::string> text = co_await store_.get(old.manifest_key, kMaxManifestBytes);
        if (text) {
          for (const CubeFileEntry& file : parse_cube_manifest(*text).files) {
            if (!referenced.contains(file.key)) co_await store_.remove(file.key);
          }
          co_await store_.remove(old.manifest_key);
        }
        result_.deleted_versions.push_back(old.version);
      } catch (const std::exception& error) {
        log_event("cube " + cube_.name + ": could not delete version " + old.version + ": " + error.what());
        kept.push_back(old);
      }
    }
    pointer_->retired = kept;
    // Only when nobody published since: the pointer read back is still ours.
    std::optional<std::string> current = co_await store_.get(cube_pointer_key(cube_.name), 1 << 20);
    if (current && parse_cube_pointer(*current).version == version_) {
      co_await store_.put(cube_pointer_key(cube_.name), cube_pointer_json(*pointer_));
    }
  }

  const CubeConfig& cube_;
  Source& source_;
  ObjectStore& store_;
  std::vector<Interner> path_;
  std::vector<Interner> file_;
  std::vector<Interner> body_;
  std::vector<MetricStats> stats_;
  Rows rows_;
  std::unordered_map<std::string, std::uint32_t> combinations_;
  std::vector<std::string> combination_keys_;
  std::string last_combination_;  // the previous row's (rows of one file usually come together)
  std::uint32_t last_combination_id_ = 0;
  std::vector<std::vector<std::uint32_t>> file_rank_;
  std::vector<std::vector<std::uint32_t>> body_rank_;
  std::vector<std::uint32_t> file_order_;   // combinations in path value order
  std::vector<std::uint64_t> file_start_;   // file f's rows: [file_start_[f], file_start_[f + 1])
  // By grouped position (rows of one file together): the row, its metric values, NULL bits.
  std::vector<std::uint32_t> grouped_row_;
  std::vector<std::int64_t> grouped_payload_;
  std::vector<std::uint64_t> grouped_nulls_;
  // Per file, sorted: (record position * body keys + body key position, grouped position).
  std::vector<std::pair<std::uint64_t, std::uint32_t>> sorted_;
  CubeSchema schema_;
  CubeManifest manifest_;
  std::optional<CubePointer> pointer_;
  std::optional<CubeManifest> previous_manifest_;
  bool incremental_ = false;
  bool too_many_changes_ = false;
  std::unordered_set<std::string> changed_;  // incremental: joined path values to build again
  std::unordered_map<std::string, CubeFileEntry> previous_files_;
  std::string version_;
  std::vector<std::string> written_;
  CubeBuildStats result_;
};

}  // namespace

namespace {

asio::awaitable<CubeBuildStats> build(const CubeConfig& cube, Source& source, ObjectStore& store, CubeBuildMode mode) {
  if (mode == CubeBuildMode::kIncremental && !cube.changed_query.empty()) {
    std::optional<CubeBuildStats> built;
    std::string problem;
    try {
      Builder builder(cube, source, store);
      built = co_await builder.run(true);
    } catch (const Builder::DoesNotFit&) {
    } catch (const SourceError& error) {
      problem = error.what();  // e.g. a query that cannot be a subquery: the full build may work
    }
    if (!problem.empty()) log_event("cube " + cube.name + ": the incremental read failed (" + problem + ")");
    if (built) co_return *built;
    log_event("cube " + cube.name + ": the changed data does not fit the current version's layout: building in full");
  }
  Builder builder(cube, source, store);
  co_return *co_await builder.run(false);
}

}  // namespace

asio::awaitable<CubeBuildStats> build_cube(const CubeConfig& cube, Source& source, ObjectStore& store,
                                           CubeBuildMode mode) {
  std::string problem;
  bool retryable = false;
  try {
    co_return co_await build(cube, source, store, mode);
  } catch (const SourceError& error) {
    problem = error.what();  // the query's or the database's error, named after the cube
    retryable = error.kind() == SourceError::Kind::kUnavailable || error.kind() == SourceError::Kind::kBusy ||
                error.kind() == SourceError::Kind::kTimeout;
  } catch (const StorageError& error) {
    problem = std::string("the store failed: ") + error.what();
    retryable = true;
  }
  throw CubeBuildError("cube " + shown(cube.name) + ": " + problem, retryable);
}

}  // namespace sluice
