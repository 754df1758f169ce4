#pragma once
// Names the calling thread (shown by `top -H`, `perf report --sort comm`,
// gdb), so that a profile says which stage a sample belongs to.
// Linux keeps at most 15 characters; longer names are cut.

#include <pthread.h>

#include <string>

namespace flashsale {

inline void NameThisThread(std::string name) {
  if (name.size() > 15) name.resize(15);
  (void)pthread_setname_np(pthread_self(), name.c_str());
}

}  // namespace flashsale
