// SPDX-License-Identifier: MIT
// The seed's Tk demo window in FLTK, on jobs.db in the current directory: four buttons over
// a scrolling log. The runner's single timer is an Fl::add_timeout, re-armed after every
// button and every run from Demo::seconds_until_wake(), as the seed re-armed Tk's after().

#include "demo_logic.hpp"
#if JOBSCHED_DEMO_PNG
#include "png_file.hpp"
#endif

#include <FL/Fl.H>
#include <FL/Fl_Button.H>
#include <FL/Fl_Double_Window.H>
#include <FL/Fl_Text_Buffer.H>
#include <FL/Fl_Text_Display.H>
#include <FL/fl_ask.H>
#include <FL/fl_draw.H>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

namespace {

constexpr const char* usage =
    "usage: demo [--self-test [--screenshot FILE]] [--help]\n"
    "\n"
    "The jobsched demo window on jobs.db in the current directory: Submit Job adds a job\n"
    "that starts in 3 s and expires in 10 s, and each job is completed when it falls due.\n"
    "  --self-test        press the buttons, wait for the jobs, check the log; exit 0 or 1\n"
    "                     (run it in an empty directory, under xvfb-run without a display)\n"
    "  --screenshot FILE  after a passing self-test, save the window as a PNG file\n"
    "\n"
    "Exit status: 0 done (or the self-test passed), 1 it failed, 2 bad arguments.\n";

class DemoWindow {
 public:
  explicit DemoWindow(jobsched_demo::Demo& demo) : demo_(demo) {
    constexpr int width = 680, height = 400, margin = 10, gap = 8, button_height = 30;
    constexpr int button_width = (width - 2 * margin - 3 * gap) / 4;
    // Widgets made between a window's constructor and end() are its children, and it
    // deletes them: FLTK's ownership, hence the plain `new`.
    window_ = new Fl_Double_Window(width, height, "jobsched demo");
    const char* labels[] = {"Submit Job", "Check Next Job", "Count Pending Jobs", "Cleanup Jobs"};
    Fl_Callback* actions[] = {on_submit, on_check_next, on_count, on_cleanup};
    for (int i = 0; i < 4; ++i) {
      buttons_[i] = new Fl_Button(margin + i * (button_width + gap), margin, button_width,
                                  button_height, labels[i]);
      buttons_[i]->callback(actions[i], this);
    }
    const int log_top = 2 * margin + button_height;
    log_ = new Fl_Text_Display(margin, log_top, width - 2 * margin, height - log_top - margin);
    log_->buffer(&buffer_);
    log_->textfont(FL_HELVETICA);
    window_->resizable(log_);
    window_->end();
  }
  DemoWindow(const DemoWindow&) = delete;
  DemoWindow& operator=(const DemoWindow&) = delete;
  ~DemoWindow() {
    Fl::remove_timeout(on_timer, this);
    delete window_;  // and its widgets, before buffer_, which the log shows
  }

  void show() {
    window_->show();
    arm_timer();  // for the jobs an earlier run left in jobs.db
  }
  void hide() { window_->hide(); }

  enum Button { submit_job, check_next_job, count_pending_jobs, cleanup_jobs };
  /// Presses a button as a click would: its callback runs.
  void press(Button button) { buttons_[button]->do_callback(); }

  std::vector<std::string> log_lines() const {
    char* text = buffer_.text();  // a malloc'ed copy
    std::vector<std::string> lines;
    std::string line;
    for (const char* c = text; *c != '\0'; ++c) {
      if (*c != '\n') {
        line += *c;
      } else {
        lines.push_back(line);
        line.clear();
      }
    }
    std::free(text);
    return lines;
  }

#if JOBSCHED_DEMO_PNG
  /// Draws what is pending, reads the window's pixels back from the display and saves them.
  bool save_png(const std::string& path) {
    Fl::flush();
    window_->make_current();
    unsigned char* pixels = fl_read_image(nullptr, 0, 0, window_->w(), window_->h());
    if (pixels == nullptr)
      return false;
    const bool saved = jobsched_demo::write_png(path, pixels, window_->w(), window_->h());
    delete[] pixels;
    return saved;
  }
#endif

 private:
  void log(const std::string& line) {
    buffer_.append((line + '\n').c_str());
    log_->insert_position(buffer_.length());
    log_->show_insert_position();  // scrolled to the newest line
  }

  /// The seed's reschedule_runner(): one timer, set to the runner's next wake-up or off.
  void arm_timer() {
    Fl::remove_timeout(on_timer, this);
    if (const auto wait = demo_.seconds_until_wake())
      Fl::add_timeout(wait->count(), on_timer, this);
  }

  void act(std::string (jobsched_demo::Demo::*action)()) {
    log((demo_.*action)());
    arm_timer();
  }

  static DemoWindow& self(void* data) {
    return *static_cast<DemoWindow*>(data);
  }
  static void on_submit(Fl_Widget*, void* data) {
    self(data).act(&jobsched_demo::Demo::submit);
  }
  static void on_check_next(Fl_Widget*, void* data) {
    self(data).act(&jobsched_demo::Demo::check_next);
  }
  static void on_count(Fl_Widget*, void* data) {
    self(data).act(&jobsched_demo::Demo::count);
  }
  static void on_cleanup(Fl_Widget*, void* data) {
    self(data).act(&jobsched_demo::Demo::cleanup);
  }
  static void on_timer(void* data) {
    DemoWindow& window = self(data);
    if (const auto line = window.demo_.run_due())
      window.log(*line);
    window.arm_timer();
  }

  jobsched_demo::Demo& demo_;
  Fl_Text_Buffer buffer_;
  Fl_Double_Window* window_ = nullptr;
  Fl_Button* buttons_[4] = {};
  Fl_Text_Display* log_ = nullptr;
};

/// --self-test: presses the buttons in an empty jobs.db, waits for the runner to complete
/// both jobs, presses some more, then checks the whole log and hides the window.
class SelfTest {
 public:
  SelfTest(DemoWindow& window, std::string screenshot)
      : window_(window), screenshot_(std::move(screenshot)) {}

  void start() { Fl::add_timeout(0.2, on_start, this); }
  /// The exit status once Fl::run() returned.
  int result() const { return result_; }

 private:
  static constexpr double give_up_after_seconds = 15;
  /// The log expected, line by line; <S> stands for a number of seconds with two decimals.
  static std::vector<std::string> expected_log() {
    return {
        "No job is pending completion.",
        "0 job(s) need to be completed.",
        "Submitted job #1, expected completion in 3 seconds.",
        "Submitted job #2, expected completion in 3 seconds.",
        "The next job is #1, due in <S> seconds.",
        "2 job(s) need to be completed.",
        "Completed job #1",
        "Completed job #2",
        "2 completed job(s) and 0 expired job(s) were cleaned up.",
        "0 job(s) need to be completed.",
        "No job is pending completion.",
    };
  }

  static bool matches(const std::string& line, const std::string& expected) {
    const auto at = expected.find("<S>");
    if (at == std::string::npos)
      return line == expected;
    const std::string before = expected.substr(0, at), after = expected.substr(at + 3);
    if (line.size() < before.size() + after.size() + 4 || line.compare(0, at, before) != 0 ||
        line.compare(line.size() - after.size(), after.size(), after) != 0)
      return false;
    const std::string seconds = line.substr(at, line.size() - before.size() - after.size());
    return seconds.find_first_not_of("0123456789.") == std::string::npos &&
           seconds.find('.') == seconds.size() - 3;
  }

  static void on_start(void* data) {
    auto& test = *static_cast<SelfTest*>(data);
    test.started_ = std::chrono::steady_clock::now();
    for (const auto button :
         {DemoWindow::check_next_job, DemoWindow::count_pending_jobs, DemoWindow::submit_job,
          DemoWindow::submit_job, DemoWindow::check_next_job, DemoWindow::count_pending_jobs})
      test.window_.press(button);
    Fl::add_timeout(0.1, on_check, data);
  }

  /// Every 0.1 s until the runner logged its second job.
  static void on_check(void* data) {
    auto& test = *static_cast<SelfTest*>(data);
    const auto lines = test.window_.log_lines();
    const bool both_completed =
        std::find(lines.begin(), lines.end(), "Completed job #2") != lines.end();
    const std::chrono::duration<double> waited = std::chrono::steady_clock::now() - test.started_;
    if (!both_completed && waited.count() < give_up_after_seconds) {
      Fl::repeat_timeout(0.1, on_check, data);
      return;
    }
    for (const auto button :
         {DemoWindow::cleanup_jobs, DemoWindow::count_pending_jobs, DemoWindow::check_next_job})
      test.window_.press(button);
    test.finish();
  }

  void finish() {
    const auto lines = window_.log_lines();
    const auto expected = expected_log();
    bool passed = lines.size() == expected.size();
    for (std::size_t i = 0; passed && i < lines.size(); ++i)
      passed = matches(lines[i], expected[i]);
    for (const auto& line : lines)
      std::cout << "log: " << line << '\n';
    if (!passed) {
      std::cerr << "demo --self-test: FAILED; the log should read:\n";
      for (const auto& line : expected)
        std::cerr << "  " << line << '\n';
    } else {
      std::cout << "demo --self-test: passed, " << lines.size() << " log lines as expected\n";
    }
    result_ = passed ? 0 : 1;
#if JOBSCHED_DEMO_PNG
    if (passed && !screenshot_.empty() && !window_.save_png(screenshot_)) {
      std::cerr << "demo: could not save the window to " << screenshot_ << '\n';
      result_ = 1;
    }
#endif
    window_.hide();  // the last window: Fl::run() returns
  }

  DemoWindow& window_;
  std::string screenshot_;
  std::chrono::steady_clock::time_point started_;
  int result_ = 1;
};

}  // namespace

int main(int argc, char** argv) {
  bool self_test = false;
  std::string screenshot;
  for (int i = 1; i < argc; ++i) {
    const std::string argument = argv[i];
    if (argument == "--help" || argument == "-h") {
      std::cout << usage;
      return 0;
    }
    if (argument == "--self-test") {
      self_test = true;
    } else if (argument == "--screenshot" && i + 1 < argc) {
      screenshot = argv[++i];
    } else {
      std::cerr << "demo: unexpected argument '" << argument << "'\n" << usage;
      return 2;
    }
  }
  if (!screenshot.empty() && !self_test) {
    std::cerr << "demo: --screenshot goes with --self-test\n";
    return 2;
  }
#if !JOBSCHED_DEMO_PNG
  if (!screenshot.empty()) {
    std::cerr << "demo: this build cannot write PNG files (CMake found no zlib)\n";
    return 2;
  }
#endif

  try {
    jobsched_demo::Demo demo("jobs.db");
    DemoWindow window(demo);
    SelfTest test(window, screenshot);
    window.show();
    if (self_test)
      test.start();
    Fl::run();
    return self_test ? test.result() : 0;
  } catch (const jobsched::Error& error) {
    std::cerr << "demo: " << error.what() << '\n';
    if (!self_test)
      fl_alert("%s", error.what());
    return 1;
  }
}
