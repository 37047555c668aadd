#include "host/links/link.hpp"

#include <new>

namespace skyhost {

std::string_view Link::read_space(size_t want) {
  try {
    return in_.space(want);
  } catch (const std::bad_alloc&) {
    return {};
  }
}

std::string Link::receive(const char* p, size_t n) {
  return deliver([&] { in_.feed(p, n); });
}

std::string Link::receive_read(size_t n) {
  return deliver([&] { in_.commit(n); });
}

template <typename Add>
std::string Link::deliver(Add&& add) {
  try {
    add();
    wire::Frame f;
    while (in_.next(f)) {
      if (on_frame) on_frame(f);
    }
    return "";
  } catch (const wire::Error& e) {
    return std::string("bad frame from worker: ") + e.what();
  } catch (const std::bad_alloc&) {
    return "out of memory for a frame from the worker (" + wire::size_text(in_.pending()) +
           " received)";
  } catch (const std::exception& e) {
    return std::string("cannot take a frame from the worker: ") + e.what();
  }
}

}  // namespace skyhost
