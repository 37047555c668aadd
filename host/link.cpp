#include "host/link.hpp"

#include <new>

namespace skyhost {

std::string Link::receive(const char* p, size_t n) {
  try {
    in_.feed(p, n);
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
