// Splits a byte stream (a task's or a command's output) into the lines that become Log events.
// A line ends at '\n' or at a lone '\r' (a progress bar redrawing itself); "\r\n" ends one line.
// A line longer than kMaxLine goes out in pieces of kMaxLine bytes. Text with no line end waits
// for one, for the end of the stream, or for its owner to flush it (the stream went quiet);
// a '\n' that comes right after such a flush ends nothing more.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace skyworker {

class LineSplitter {
 public:
  static constexpr size_t kMaxLine = 16 * 1024;

  /// Feeds bytes; `emit(std::string_view line)` is called for each whole line (without its end).
  template <typename Emit>
  void feed(std::string_view data, Emit&& emit) {
    while (!data.empty()) {
      size_t end = data.find_first_of("\r\n");
      std::string_view text = data.substr(0, end == std::string_view::npos ? data.size() : end);
      if (!text.empty()) {
        ended_ = false;
        while (partial_.size() + text.size() > kMaxLine) {
          size_t take = kMaxLine - partial_.size();
          partial_.append(text.substr(0, take));
          text.remove_prefix(take);
          emit(std::string_view(partial_));
          partial_.clear();
        }
        partial_.append(text);
      }
      if (end == std::string_view::npos) return;
      char c = data[end];
      data.remove_prefix(end + 1);
      if (c == '\r') {
        if (!partial_.empty()) emit(std::string_view(partial_));
        partial_.clear();
        ended_ = true;  // a '\n' right after belongs to this line end
      } else if (ended_ && partial_.empty()) {
        ended_ = false;  // "\r\n", or the '\n' of a line already flushed
      } else {
        emit(std::string_view(partial_));
        partial_.clear();
        ended_ = false;
      }
    }
  }

  /// Emits the text waiting for a line end, if any (the stream ended or went quiet).
  template <typename Emit>
  void flush(Emit&& emit) {
    if (partial_.empty()) return;
    emit(std::string_view(partial_));
    partial_.clear();
    ended_ = true;
  }

  bool pending() const { return !partial_.empty(); }

 private:
  std::string partial_;
  bool ended_ = false;
};

}  // namespace skyworker
